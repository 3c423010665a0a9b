/*
 * array.c - synced arrays: one logical float32 buffer of `size` elements, with a host
 * copy and, when a device backend is loaded, a device copy (NNabla's SyncedArray).
 *
 * State: either a pending lazy fill (`lazy`: zero() and fill() record the value and touch
 * no memory until someone asks for a pointer, so solver.zero_grad() is free and
 * `zeroing` tells the graph and the solvers that a gradient received nothing since), or
 * a set of valid copies (host_valid, dev_valid). Asking for a pointer syncs lazily:
 * reading makes that copy valid too, writing makes it the only valid one. An array
 * nobody has written reads as zeros.
 *
 * The device side is reached only through the nl_device_ops table that a device
 * backend (libnnlua_cuda.so) installs; the CPU build never needs it.
 */
#include "internal.h"
#include "device.h"
#include <stdlib.h>
#include <string.h>

struct nl_array {
    int refcount;
    int64_t size;
    float *host;          /* NULL until first host use */
    void *device;         /* NULL until first device use */
    int device_id;        /* where `device` lives */
    bool host_valid;
    bool dev_valid;
    bool lazy;            /* a fill is pending: lazy_value everywhere */
    float lazy_value;
    bool zeroing;         /* the pending fill came from zero() */
    uint64_t version;     /* stamp of the last write access (unique across arrays), 0: none */
};

/* Every write access (a writable pointer, a lazy fill, clear) takes a new stamp, so that a
 * kernel can tell whether an array changed since it last read it (nl_array_version). */
static uint64_t g_write_stamp;

uint64_t nl_array_version(const nl_array *a) { return a->version; }

static const nl_device_ops *g_dev;

void nl_set_device_ops(const nl_device_ops *ops) { g_dev = ops; }
const nl_device_ops *nl_device_ops_get(void) { return g_dev; }

nl_array *nl_array_new(int64_t size) {
    if (size < 0) { nl_error("array size %lld is negative", (long long)size); return NULL; }
    /* As for shapes (NL_MAX_ELEMENTS): byte counts must not overflow size_t. */
    if (size > ((int64_t)1 << 48)) {
        nl_error("array size %lld is too large (at most 2^48 elements)", (long long)size);
        return NULL;
    }
    nl_array *a = calloc(1, sizeof *a);
    if (!a) { nl_error("out of memory"); return NULL; }
    a->refcount = 1;
    a->size = size;
    return a;
}

void nl_array_retain(nl_array *a) { if (a) a->refcount++; }

static size_t nbytes(const nl_array *a) { return (size_t)(a->size ? a->size : 1) * sizeof(float); }

static void drop_host(nl_array *a) {
    if (a->host) nl_free(a->host, nbytes(a));
    a->host = NULL;
    a->host_valid = false;
}

static void drop_device(nl_array *a) {
    if (a->device && g_dev) g_dev->free(a->device, nbytes(a), a->device_id);
    a->device = NULL;
    a->dev_valid = false;
}

void nl_array_release(nl_array *a) {
    if (!a || --a->refcount > 0) return;
    drop_host(a);
    drop_device(a);
    free(a);
}

int64_t nl_array_size(const nl_array *a) { return a->size; }

float *nl_array_host(nl_array *a, nl_access mode) {
    if (!a->host) {
        a->host = nl_alloc(nbytes(a));
        if (!a->host) return NULL;
    }
    if (mode != NL_WRITE) {
        if (a->lazy) {
            float v = a->lazy_value;
            if (v == 0.0f) memset(a->host, 0, (size_t)a->size * sizeof(float));
            else for (int64_t i = 0; i < a->size; i++) a->host[i] = v;
        } else if (!a->host_valid && a->dev_valid) {
            if (g_dev->to_host(a->host, a->device, (size_t)a->size * sizeof(float), a->device_id)) return NULL;
        } else if (!a->host_valid) {
            memset(a->host, 0, (size_t)a->size * sizeof(float));   /* never written: zeros */
        }
    }
    a->lazy = false;
    a->zeroing = false;
    a->host_valid = true;
    if (mode != NL_READ) { a->dev_valid = false; a->version = ++g_write_stamp; }
    return a->host;
}

void *nl_array_device(nl_array *a, nl_access mode, int device_id) {
    if (!g_dev) { nl_error("no device backend is loaded"); return NULL; }
    if (a->device && a->device_id != device_id) {
        /* Moving between devices goes through the host. */
        if (a->dev_valid && !a->host_valid && !a->lazy && !nl_array_host(a, NL_READ)) return NULL;
        drop_device(a);
    }
    if (!a->device) {
        a->device = g_dev->alloc(nbytes(a), device_id);
        if (!a->device) return NULL;
        a->device_id = device_id;
    }
    if (mode != NL_WRITE) {
        if (a->lazy) {
            if (g_dev->fill(a->device, a->lazy_value, a->size, device_id)) return NULL;
        } else if (!a->dev_valid && a->host_valid) {
            if (g_dev->to_device(a->device, a->host, (size_t)a->size * sizeof(float), device_id)) return NULL;
        } else if (!a->dev_valid) {
            if (g_dev->fill(a->device, 0.0f, a->size, device_id)) return NULL;
        }
    }
    a->lazy = false;
    a->zeroing = false;
    a->dev_valid = true;
    if (mode != NL_READ) { a->host_valid = false; a->version = ++g_write_stamp; }
    return a->device;
}

int nl_array_device_id(const nl_array *a) { return a->device ? a->device_id : -1; }

int nl_array_where(const nl_array *a) {
    return (a->host_valid ? 1 : 0) | (a->dev_valid ? 2 : 0) | (a->lazy ? 4 : 0);
}

void nl_array_zero(nl_array *a) {
    a->version = ++g_write_stamp;
    a->lazy = true;
    a->lazy_value = 0.0f;
    a->zeroing = true;
    a->host_valid = a->dev_valid = false;
}

void nl_array_fill(nl_array *a, float v) {
    a->version = ++g_write_stamp;
    a->lazy = true;
    a->lazy_value = v;
    a->zeroing = false;
    a->host_valid = a->dev_valid = false;
}

int nl_array_zeroing(const nl_array *a) { return a->lazy && a->zeroing; }

int nl_array_is_lazy(const nl_array *a, float *value) {
    if (!a->lazy) return 0;
    if (value) *value = a->lazy_value;
    return 1;
}

void nl_array_clear(nl_array *a) {
    a->version = ++g_write_stamp;
    drop_host(a);
    drop_device(a);
    a->lazy = false;
    a->zeroing = false;
}

int nl_array_has_storage(const nl_array *a) { return a->lazy || a->host_valid || a->dev_valid; }

int nl_array_copy(nl_array *dst, int64_t dst_off, nl_array *src, int64_t src_off, int64_t n) {
    if (n < 0 || dst_off < 0 || src_off < 0 || dst_off > dst->size - n || src_off > src->size - n)
        return nl_error("array copy of %lld elements out of range (dst %lld+%lld, src %lld+%lld)",
                        (long long)n, (long long)dst->size, (long long)dst_off,
                        (long long)src->size, (long long)src_off);
    const float *s = nl_array_host(src, NL_READ);
    if (!s) return -1;
    bool whole = dst_off == 0 && n == dst->size;
    float *d = nl_array_host(dst, whole ? NL_WRITE : NL_READWRITE);
    if (!d) return -1;
    memmove(d + dst_off, s + src_off, (size_t)n * sizeof(float));
    return 0;
}

int nl_array_set_from(nl_array *dst, const float *src, int64_t n) {
    if (n != dst->size)
        return nl_error("cannot set %lld values into an array of %lld", (long long)n, (long long)dst->size);
    float *d = nl_array_host(dst, NL_WRITE);
    if (!d) return -1;
    memcpy(d, src, (size_t)n * sizeof(float));
    return 0;
}

int nl_array_get_into(nl_array *src, float *dst, int64_t n) {
    if (n != src->size)
        return nl_error("cannot read %lld values from an array of %lld", (long long)n, (long long)src->size);
    const float *s = nl_array_host(src, NL_READ);
    if (!s) return -1;
    memcpy(dst, s, (size_t)n * sizeof(float));
    return 0;
}
