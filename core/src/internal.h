/*
 * internal.h - declarations shared by the engine's C files (not part of the FFI surface).
 * Macros are allowed here. Everything public lives in core/include/nnlua.h.
 */
#ifndef NNLUA_INTERNAL_H
#define NNLUA_INTERNAL_H
#include "nnlua.h"
#include <stdarg.h>
#include <stdbool.h>

#if defined(__GNUC__)
#define NL_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define NL_PRINTF(a, b)
#endif

/* Records an error message for nl_last_error() and returns -1 (use as `return nl_error(...)`). */
int nl_error(const char *fmt, ...) NL_PRINTF(1, 2);
/* Prepends "prefix: " to the current message. Returns -1. */
int nl_error_prefix(const char *fmt, ...) NL_PRINTF(1, 2);
/* Formats a shape as "{2, 3, 4}" into buf (at least 160 bytes) and returns buf. */
const char *nl_shape_str(char *buf, int ndim, const int64_t *shape);

/* Aligned, cached, accounted host memory (64-byte alignment). bytes must be passed back. */
void *nl_alloc(size_t bytes);
void nl_free(void *p, size_t bytes);

/* The stamp of an array's last write access (writable host or device pointer, lazy
 * zero/fill, clear): equal stamps mean unchanged contents. Unique across arrays; 0 for an
 * array never written. */
uint64_t nl_array_version(const nl_array *a);

/* Random numbers from the engine's generator. */
uint64_t nl_rng_next(void);
double nl_rng_uniform01(void);
double nl_rng_normal(void);

/* A generator state of its own (a function node given seed >= 0 keeps one). In the
 * nl_rngs_* calls, g = NULL means the engine's generator (what nn.seed resets). */
typedef struct nl_rng {
    uint64_t s[4];
    double spare;
    int have_spare;
} nl_rng;
void nl_rng_init(nl_rng *g, uint64_t seed);           /* seeded as nl_seed(seed) seeds */
uint64_t nl_rngs_next(nl_rng *g);
double nl_rngs_uniform01(nl_rng *g);                  /* [0, 1), 53 random bits */
double nl_rngs_normal(nl_rng *g);                     /* standard normal */
int64_t nl_rngs_below(nl_rng *g, int64_t n);          /* uniform integer in [0, n), n >= 1 */

#endif
