/*
 * index_plans.h - what the CPU implementations of pad, trilu (array_ops.c), one_hot
 * (indexing.c), embed (embed.c), categorical_cross_entropy and kl_multinomial (loss_ext.c)
 * share with their CUDA twins (cuda/indexing.cu), and what gather, gather_nd, scatter_nd and
 * scatter_add (indexing.c) share with theirs (cuda/gather.cu), and what sort (indexing.c) and
 * interpolate (array_ops.c) share with theirs (cuda/sort.cu, cuda/interpolate.cu): the argument
 * positions, the setup's state, the per-element math and id checks (NL_HD: compiled for the
 * host and the device) and the messages that name a bad id. Pad's and shift's plans are
 * nd_view.h's nl_tabmap; the class-label checks are labels.h's.
 */
#ifndef NNLUA_INDEX_PLANS_H
#define NNLUA_INDEX_PLANS_H
#include "../src/function.h"
#include "elementwise_math.h"   /* NL_HD, nl_logcf */
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

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

/* ---- sort(x, axis, reverse, with_index, only_index): x viewed as (A, N, B), sorted along N ---- */
enum { SO_AXIS, SO_REVERSE, SO_WITH_INDEX, SO_ONLY_INDEX };

typedef struct sort_item { float v; uint32_t k; int64_t i; } sort_item;   /* value, nl_sort_key, position */

typedef struct sort_plan {
    int64_t A, N, B;
    bool reverse;
    int n_val, n_idx;       /* output slots, -1 = absent */
    int64_t *perm;          /* CPU: A*N*B, the source position (along the axis) of each output */
    sort_item *items;       /* CPU: N work items */
} sort_plan;

/* The sort order as an unsigned key: a < b in the order iff key(a) < key(b), equal keys
 * being ties (kept in source order: sorting is stable). Ascending, or descending with
 * reverse; NaN last either way (every NaN the same key); -0 and +0 tie. */
NL_HD uint32_t nl_sort_key(float v, bool reverse) {
    if (v != v) return 0xffffffffu;
    if (v == 0.0f) v = 0.0f;
    uint32_t u;
#ifdef __CUDA_ARCH__
    u = __float_as_uint(v);
#else
    memcpy(&u, &v, sizeof u);
#endif
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);   /* order-preserving: -inf .. +inf */
    return reverse ? ~u : u;   /* never all ones: that pattern is a NaN's */
}

/* ---- interpolate(x, scale, output_size, mode, align_corners, half_pixel, half_pixel_for_nn,
 * channel_last) ---- */
enum { IP_SCALE, IP_SIZE, IP_MODE, IP_ALIGN, IP_HALF, IP_HALF_NN, IP_CHANNEL_LAST };
enum { IP_MAX_SPATIAL = 3 };

/* Spatial axis s's tables hold one entry per output position o along that axis, at
 * at[s] + o: the lower source index i1, the upper one i2 (linear; nearest: i2 = i1) and
 * the upper one's weight w (linear). i1 and i2 never decrease along o. */
typedef struct interp_plan {
    int ns;                            /* spatial axes */
    int axis[IP_MAX_SPATIAL];          /* their positions in x (and y) */
    bool nearest;
    int64_t at[IP_MAX_SPATIAL];        /* each axis' first entry in the tables */
    int64_t n_tab;                     /* entries: the sum of the spatial output sizes */
    int64_t *i1, *i2;                  /* CPU: the tables (n_tab entries each) */
    float *w;
    int64_t xst[NL_MAX_NDIM];          /* x's row-major strides */
} interp_plan;

/* Corner c (0..2^ns - 1 for linear, 0 for nearest) of the output position whose spatial
 * indices are o[0..ns-1]: adds the corner's source offset to *off and returns its weight
 * (the product over the axes of w or 1 - w, in axis order; 1 for nearest). i1, i2, w: the
 * plan's tables, on the host or copied to the device. */
NL_HD float nl_interp_corner(const interp_plan *p, const int64_t *i1, const int64_t *i2, const float *w,
                             const int64_t *o, int c, int64_t *off) {
    float wgt = 1.0f;
    for (int s = 0; s < p->ns; s++) {
        const int64_t k = p->at[s] + o[s], st = p->xst[p->axis[s]];
        if (p->nearest) { *off += i1[k] * st; continue; }
        if ((c >> s) & 1) { wgt *= w[k]; *off += i2[k] * st; }
        else { wgt *= 1.0f - w[k]; *off += i1[k] * st; }
    }
    return wgt;
}

#endif
