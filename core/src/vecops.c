/*
 * vecops.c - whole-array element-wise helpers for solvers and NdArray: axpy, scale,
 * sums and inf/nan checks.
 */
#include "function.h"
#include <math.h>

static int same_size(nl_array *a, nl_array *b, const char *what) {
    if (nl_array_size(a) != nl_array_size(b))
        return nl_error("%s: arrays of %lld and %lld elements", what,
                        (long long)nl_array_size(a), (long long)nl_array_size(b));
    return 0;
}

typedef struct axpy_ctx { float *y; const float *x; float alpha; } axpy_ctx;

static NL_SIMD_CLONES void axpy_range(int64_t i0, int64_t i1, void *vc) {
    const axpy_ctx *c = vc;
    float *restrict y = c->y;
    const float *restrict x = c->x;
    const float alpha = c->alpha;
    for (int64_t i = i0; i < i1; i++) y[i] += alpha * x[i];
}

int nl_axpy(nl_array *y, float alpha, nl_array *x) {
    if (same_size(y, x, "axpy")) return -1;
    const float *px = nl_array_host(x, NL_READ);
    float *py = px ? nl_array_host(y, NL_READWRITE) : NULL;
    if (!py) return -1;
    if (px == py) {   /* y += alpha * y */
        int64_t n = nl_array_size(y);
        for (int64_t i = 0; i < n; i++) py[i] += alpha * py[i];
        return 0;
    }
    axpy_ctx c = {py, px, alpha};
    nl_parallel_for(nl_array_size(y), 4, axpy_range, &c);
    return 0;
}

int nl_scale(nl_array *x, float alpha) {
    float *p = nl_array_host(x, NL_READWRITE);
    if (!p) return -1;
    int64_t n = nl_array_size(x);
    for (int64_t i = 0; i < n; i++) p[i] *= alpha;
    return 0;
}

double nl_sum(nl_array *x) {
    const float *p = nl_array_host(x, NL_READ);
    if (!p) return NAN;
    double s = 0;
    int64_t n = nl_array_size(x);
    for (int64_t i = 0; i < n; i++) s += p[i];
    return s;
}

double nl_sum_squares(nl_array *x) {
    const float *p = nl_array_host(x, NL_READ);
    if (!p) return NAN;
    double s = 0;
    int64_t n = nl_array_size(x);
    for (int64_t i = 0; i < n; i++) s += (double)p[i] * p[i];
    return s;
}

int nl_has_inf_or_nan(nl_array *x) {
    const float *p = nl_array_host(x, NL_READ);
    if (!p) return -1;
    int64_t n = nl_array_size(x);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(p[i])) return 1;
    return 0;
}
