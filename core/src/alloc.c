/*
 * alloc.c - the engine's host allocator: 64-byte aligned blocks, a size-bucketed cache of
 * freed blocks (so a static graph that clears and refills its buffers every step stops
 * reaching the system allocator after the first step), and byte accounting that the Lua
 * side reads to trigger garbage collection under memory pressure.
 */
#include "internal.h"
#include <stdlib.h>
#include <string.h>

enum { N_BUCKETS = 48 };

/* The cache keeps freed blocks up to 64 MiB plus half the peak in use: enough for the
 * arrays that die between two garbage collections (the Lua side collects when the engine's
 * bytes grow by a quarter, at least 64 MiB), so that a training loop fed fresh batches by a
 * data iterator also stops reaching the system allocator. When a freed block does not fit,
 * blocks of other sizes are given back first (the sizes now in use stay cached). */
static const int64_t CACHE_BASE_BYTES = (int64_t)64 << 20;

typedef struct cached_block { struct cached_block *next; } cached_block;

static struct {
    cached_block *head[N_BUCKETS];
    int count[N_BUCKETS];
    int64_t in_use, peak, cached, sys_allocs;
} g_mem;

/* Blocks are rounded up to a power of two (>= 64 bytes) so that a freed block fits any
 * later request of its bucket. */
static int bucket_of(size_t bytes, size_t *rounded) {
    size_t s = 64;
    int b = 0;
    /* beyond the largest power of two the doubling would wrap to 0 and never end: such a
     * request cannot be met anyway (posix_memalign fails on it) */
    if (bytes > ((size_t)1 << (sizeof(size_t) * 8 - 1))) { *rounded = bytes; return N_BUCKETS; }
    while (s < bytes) { s <<= 1; b++; }
    *rounded = s;
    return b;
}

void *nl_alloc(size_t bytes) {
    if (bytes == 0) bytes = 1;
    size_t rounded;
    int b = bucket_of(bytes, &rounded);
    void *p = NULL;
    if (b < N_BUCKETS && g_mem.head[b]) {
        cached_block *c = g_mem.head[b];
        g_mem.head[b] = c->next;
        g_mem.count[b]--;
        g_mem.cached -= (int64_t)rounded;
        p = c;
    } else {
        if (posix_memalign(&p, 64, rounded) != 0) {
            /* Give the cache back and try once more before failing. */
            nl_free_cached();
            if (posix_memalign(&p, 64, rounded) != 0) {
                nl_error("out of memory allocating %zu bytes", bytes);
                return NULL;
            }
        }
        g_mem.sys_allocs++;
    }
    g_mem.in_use += (int64_t)rounded;
    if (g_mem.in_use > g_mem.peak) g_mem.peak = g_mem.in_use;
    return p;
}

void nl_free(void *p, size_t bytes) {
    if (!p) return;
    if (bytes == 0) bytes = 1;
    size_t rounded;
    int b = bucket_of(bytes, &rounded);
    g_mem.in_use -= (int64_t)rounded;
    const int64_t limit = CACHE_BASE_BYTES + g_mem.peak / 2;
    if (b < N_BUCKETS && (int64_t)rounded <= limit) {
        /* make room: give back blocks of other sizes, the largest first */
        for (int e = N_BUCKETS - 1; e >= 0 && g_mem.cached + (int64_t)rounded > limit; e--) {
            if (e == b) continue;
            while (g_mem.head[e] && g_mem.cached + (int64_t)rounded > limit) {
                cached_block *c = g_mem.head[e];
                g_mem.head[e] = c->next;
                g_mem.count[e]--;
                g_mem.cached -= (int64_t)64 << e;
                free(c);
            }
        }
    }
    if (b < N_BUCKETS && g_mem.cached + (int64_t)rounded <= limit) {
        cached_block *c = p;
        c->next = g_mem.head[b];
        g_mem.head[b] = c;
        g_mem.count[b]++;
        g_mem.cached += (int64_t)rounded;
        return;
    }
    free(p);
}

void nl_free_cached(void) {
    for (int b = 0; b < N_BUCKETS; b++) {
        while (g_mem.head[b]) {
            cached_block *c = g_mem.head[b];
            g_mem.head[b] = c->next;
            free(c);
        }
        g_mem.count[b] = 0;
    }
    g_mem.cached = 0;
}

int64_t nl_bytes_in_use(void) { return g_mem.in_use; }
int64_t nl_bytes_peak(void) { return g_mem.peak; }
int64_t nl_bytes_cached(void) { return g_mem.cached; }
int64_t nl_alloc_count(void) { return g_mem.sys_allocs; }
