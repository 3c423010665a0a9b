/*
 * array.c - synced arrays: one logical float32 buffer of `size` elements.
 *
 * An array holds at most one host copy now and is laid out for a device copy later
 * (NNabla's SyncedArray): `head` says which copy is current. Zero and fill are lazy —
 * they record the value and touch no memory until someone asks for a pointer — so that
 * solver.zero_grad() is free, and `zeroing` tells the graph and the solvers that a
 * gradient has received nothing since it was zeroed.
 */
#include "internal.h"
#include <stdlib.h>
#include <string.h>

typedef enum { HEAD_NONE = 0, HEAD_LAZY = 1, HEAD_HOST = 2, HEAD_DEVICE = 3 } head_t;

struct nl_array {
    int refcount;
    int64_t size;
    float *host;          /* NULL until first use */
    void *device;         /* reserved for the CUDA backend */
    head_t head;
    float lazy_value;     /* pending value while head == HEAD_LAZY */
    bool zeroing;         /* the pending value came from zero() */
};

nl_array *nl_array_new(int64_t size) {
    if (size < 0) { nl_error("array size %lld is negative", (long long)size); return NULL; }
    nl_array *a = calloc(1, sizeof *a);
    if (!a) { nl_error("out of memory"); return NULL; }
    a->refcount = 1;
    a->size = size;
    return a;
}

void nl_array_retain(nl_array *a) { if (a) a->refcount++; }

static void drop_host(nl_array *a) {
    if (a->host) nl_free(a->host, (size_t)a->size * sizeof(float));
    a->host = NULL;
}

void nl_array_release(nl_array *a) {
    if (!a || --a->refcount > 0) return;
    drop_host(a);
    free(a);
}

int64_t nl_array_size(const nl_array *a) { return a->size; }

float *nl_array_host(nl_array *a, nl_access mode) {
    if (!a->host) {
        a->host = nl_alloc((size_t)(a->size ? a->size : 1) * sizeof(float));
        if (!a->host) return NULL;
        /* Never hand out uninitialized memory for reading: an unset array reads as 0. */
        if (a->head == HEAD_NONE && mode != NL_WRITE) memset(a->host, 0, (size_t)a->size * sizeof(float));
    }
    if (a->head == HEAD_LAZY && mode != NL_WRITE) {
        float v = a->lazy_value;
        if (v == 0.0f) memset(a->host, 0, (size_t)a->size * sizeof(float));
        else for (int64_t i = 0; i < a->size; i++) a->host[i] = v;
    }
    if (mode == NL_READ) {
        if (a->head != HEAD_HOST) a->head = HEAD_HOST;   /* materialized lazy/none */
    } else {
        a->head = HEAD_HOST;
    }
    a->zeroing = false;
    return a->host;
}

void nl_array_zero(nl_array *a) {
    a->head = HEAD_LAZY;
    a->lazy_value = 0.0f;
    a->zeroing = true;
}

void nl_array_fill(nl_array *a, float v) {
    a->head = HEAD_LAZY;
    a->lazy_value = v;
    a->zeroing = false;
}

int nl_array_zeroing(const nl_array *a) { return a->head == HEAD_LAZY && a->zeroing; }

int nl_array_is_lazy(const nl_array *a, float *value) {
    if (a->head != HEAD_LAZY) return 0;
    if (value) *value = a->lazy_value;
    return 1;
}

void nl_array_clear(nl_array *a) {
    drop_host(a);
    a->head = HEAD_NONE;
    a->zeroing = false;
}

int nl_array_has_storage(const nl_array *a) { return a->host != NULL || a->head == HEAD_LAZY; }

int nl_array_copy(nl_array *dst, int64_t dst_off, nl_array *src, int64_t src_off, int64_t n) {
    if (n < 0 || dst_off < 0 || src_off < 0 || dst_off + n > dst->size || src_off + n > src->size)
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
