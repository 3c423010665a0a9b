/*
 * reduce_plan.h - the plans that reduction.c's setup builds for max, min, prod, norm
 * (group_plan) and cumsum, cumprod (cum_plan), with the offset and gradient helpers both
 * the CPU code and the CUDA kernels (cuda/reduce_ext.cu, which reads f->state) use.
 * The helpers are host and device functions under nvcc, plain C elsewhere.
 */
#ifndef NNLUA_REDUCE_PLAN_H
#define NNLUA_REDUCE_PLAN_H
#include "../src/function.h"
#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define NL_RD_HD __host__ __device__ static inline
#else
#define NL_RD_HD static inline
#endif

/* Some axes of x in order, with x's (row-major) strides: the j-th element of their
 * row-major walk sits at offset sum_k i_k(j) * stride[k]. */
typedef struct group_axes {
    int n;
    int64_t shape[NL_MAX_NDIM];
    int64_t stride[NL_MAX_NDIM];
} group_axes;

NL_RD_HD int64_t group_offset(const group_axes *a, int64_t j) {
    int64_t off = 0;
    for (int k = a->n - 1; k >= 0; k--) {
        const int64_t q = j / a->shape[k];
        off += (j - q * a->shape[k]) * a->stride[k];
        j = q;
    }
    return off;
}

/* max, min, prod, norm: output element j reduces the group of x at base[j] + roff[r],
 * r = 0..R-1; base[j] = group_offset(&kept, j), roff[r] = group_offset(&red, r). */
typedef struct group_plan {
    int64_t ysize, R;
    group_axes kept, red; /* x's kept axes (walked by j) and reduced axes (by r) */
    int64_t *base;        /* ysize entries */
    int64_t *roff;        /* R entries */
    int64_t *arg;         /* max/min: the winning r of each group (ysize entries; CPU only) */
    int n_val, n_idx;     /* max/min: output slot of the values / indices, -1 = none */
    bool is_min;
    double p;             /* norm */
} group_plan;

/* norm's gradient direction for x = v: sign(v) |v|^(p-1), 0 at v = 0 */
NL_RD_HD double norm_grad_term(double v, double pv) {
    double gr = pv == 2 ? v : pv == 1 ? (v > 0) - (v < 0) : copysign(pow(fabs(v), pv - 1), v);
    if (v == 0) gr = 0;
    return gr;
}

/* cumsum, cumprod: x viewed as (A, N, B), scanned along N. */
typedef struct cum_plan { int64_t A, N, B; bool exclusive, reverse; } cum_plan;

/* Offset of the i-th element in scan order on line (a, b). */
NL_RD_HD int64_t cum_at(const cum_plan *p, int64_t a, int64_t b, int64_t i) {
    int64_t t = p->reverse ? p->N - 1 - i : i;
    return (a * p->N + t) * p->B + b;
}

#endif
