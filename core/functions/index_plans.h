/*
 * index_plans.h - what the CPU implementations of pad, trilu (array_ops.c), one_hot
 * (indexing.c), embed (embed.c), categorical_cross_entropy and kl_multinomial (loss_ext.c)
 * share with their CUDA twins (cuda/indexing.cu), and what gather, gather_nd, scatter_nd and
 * scatter_add (indexing.c) share with theirs (cuda/gather.cu): the argument positions, the setup's
 * state, the per-element math and id checks (NL_HD: compiled for the host and the device)
 * and the messages that name a bad id. Pad's and shift's plans are nd_view.h's nl_tabmap;
 * the class-label checks are labels.h's.
 */
#ifndef NNLUA_INDEX_PLANS_H
#define NNLUA_INDEX_PLANS_H
#include "../src/function.h"
#include "elementwise_math.h"   /* NL_HD, nl_logcf */
#include <float.h>
#include <math.h>
#include <stdbool.h>

/* ---- pad(x, pad_width, mode, constant_value) ---- */
enum { PD_WIDTH, PD_MODE, PD_VALUE };

/* ---- trilu(x, k, upper) ---- */
enum { TU_K, TU_UPPER };

/* Whether element (i, j) of a matrix is kept: the upper (j - i >= k) or lower (j - i <= k)
 * triangle. */
NL_HD bool nl_trilu_keep(int64_t i, int64_t j, int64_t k, bool upper) { return upper ? j - i >= k : j - i <= k; }

/* ---- one_hot(x, shape) ---- */
enum { OH_SHAPE };

/* Reads the class id x for an axis of n classes: false when x is not an integer; else *c
 * is the class (-n..-1 wrap around, as in NNabla) or n for an id out of range (an all-zero
 * row). */
NL_HD bool nl_one_hot_class(float x, int64_t n, int64_t *c) {
    const double v = x;
    if (!isfinite(v) || v != floor(v)) return false;
    int64_t k = v >= -(double)n && v < (double)n ? (int64_t)v : n;
    if (k < 0) k += n;
    *c = k;
    return true;
}

/* The error for entry pos (0-based) of x holding v, not an integer. */
static inline int nl_one_hot_bad(float v, int64_t pos) {
    return nl_error("x entry %lld is %g, not an integer class id", (long long)(pos + 1), (double)v);
}

/* ---- embed(x0, w): x0 (n_ids) ids, w (rows, row), y (n_ids, row) ---- */
typedef struct embed_state { int64_t n_ids, rows, row; } embed_state;

/* Whether v is a row id of w: an integer in 0..rows-1. */
NL_HD bool nl_embed_id_ok(float v, int64_t rows) {
    return v >= 0.0f && v == floorf(v) && (double)v < (double)rows;
}

/* The error for entry pos (0-based) of x0 holding v, not a row id. */
static inline int nl_embed_bad(float v, int64_t pos, int64_t rows) {
    return nl_error("x0 value %g at position %lld is not a row id of w (0-based ids 0..%lld)", (double)v,
                    (long long)(pos + 1), (long long)(rows - 1));
}

/* ---- categorical_cross_entropy(x, target, axis) ---- */
enum { CCE_AXIS };

/* y = -log max(x[label], FLT_MIN) */
NL_HD float nl_cce_fwd(float x) { return -nl_logcf(x); }
/* what backward subtracts from dx at the label: dy / max(x[label], FLT_MIN) */
NL_HD float nl_cce_bwd(float x, float dy) {
    const float p = x > FLT_MIN ? x : FLT_MIN;
    return dy / p;
}

/* ---- kl_multinomial(p, q, base_axis) ---- */
enum { KL_BASE_AXIS };
#define NL_KL_EPS 1.0e-8f

/* One term of D = sum p (log(p + e) - log(q + e)), summed in double. */
NL_HD double nl_kl_term(float p, float q) { return (double)p * (logf(p + NL_KL_EPS) - logf(q + NL_KL_EPS)); }
/* dp = dy (log(p + e) - log(q + e) + p / (p + e)) */
NL_HD float nl_kl_dp(float p, float q, float dy) {
    return dy * (logf(p + NL_KL_EPS) - logf(q + NL_KL_EPS) + p / (p + NL_KL_EPS));
}
/* dq = -dy p / (q + e) */
NL_HD float nl_kl_dq(float p, float q, float dy) { return -dy * p / (q + NL_KL_EPS); }

/* p, q: (n, k) with n = prod(shape[1..base_axis-1]), k = the rest; D: (n). Returns the
 * 0-based base axis, or -1 with an error. */
static inline int nl_kl_dims(nl_func *f, int64_t *n, int64_t *k) {
    const nl_var *p = nl_in(f, 0);
    int ba;
    if (nl_norm_axis("base_axis", nl_arg_int(f, KL_BASE_AXIS), p->ndim, &ba)) return -1;
    *n = 1; *k = 1;
    for (int d = 0; d < ba; d++) *n *= p->shape[d];
    for (int d = ba; d < p->ndim; d++) *k *= p->shape[d];
    return ba;
}

/* ---- gather(x, indices, axis, batch_dims) ---- */
enum { GA_AXIS, GA_BATCH_DIMS };
typedef struct gather_plan {
    int axis;
    int64_t Bn, Mid, I, inner, n;   /* x: (Bn, Mid, n, inner), indices: (Bn, I) */
} gather_plan;

/* ---- gather_nd(x, indices), scatter_nd(data, indices, out, shape, add):
 * indices (M, Y...) address the first M axes ---- */
enum { SN_SHAPE, SN_ADD };
typedef struct nd_plan {
    int M;
    int64_t cols;                     /* prod(Y) */
    int64_t slice;                    /* prod of the addressed array's axes after M */
    int64_t shape[NL_MAX_NDIM];       /* the addressed array's shape (x, or scatter_nd's y) */
    int64_t stride[NL_MAX_NDIM];
} nd_plan;

/* ---- scatter_add(x0, indices, x1, axis) ---- */
enum { SA_AXIS };

/* The device's reading of an index stored as a float, as nd_view.h's nl_read_index does
 * it: true and *out = the 0-based position for Lua positions 1..n or -n..-1, else false
 * (the host then names it with nl_read_index). */
NL_HD bool nl_index_at(float v, int64_t n, int64_t *out) {
    const double d = v;
    if (!isfinite(d) || d != floor(d) || fabs(d) > 9e15) return false;
    const int64_t i = (int64_t)d;
    if (i == 0 || i > n || i < -n) return false;
    *out = i > 0 ? i - 1 : n + i;
    return true;
}

#endif
