/*
 * normalization.c - batch_normalization with NNabla semantics.
 *
 *   batch_normalization(x, beta, gamma, mean, variance, axes={2}, decay_rate=0.9,
 *                       eps=1e-5, batch_stat=true)
 *
 * axes are the kept (channel) axes, Lua 1-based ({2} is NNabla's [1]); they must be
 * adjacent. beta/gamma/mean/variance have x's shape with 1 on every reduced axis. x is
 * viewed as (outer, C, inner), C the product of the kept axes, n = outer * inner.
 *   batch_stat = true: y = gamma * (x - bm) / sqrt(bv + eps) + beta with the batch mean bm
 *     and biased batch variance bv; every forward also updates the running statistics in
 *     place: mean = decay*mean + (1-decay)*bm, variance = decay*variance +
 *     (1-decay)*bv*n/(n-1) (unbiased; n = 1 uses bv). mean/variance get no gradient
 *     (zeros when they need one and are not accumulating).
 *   batch_stat = false: y = gamma * (x - mean) / sqrt(variance + eps) + beta; backward
 *     gives the exact gradients for x, beta, gamma, and also for mean and variance
 *     (dmean = -sum(dy*gamma)/s, dvar = -0.5 * sum(dy*gamma*(x-mean)) / s^3, s = sqrt(var+eps)).
 * beta, gamma, mean and variance are optional inputs (beta = 0, gamma = 1 when absent;
 * without mean/variance, batch_stat = true normalizes without running statistics).
 */
#include "../src/function.h"
#include "vmath.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { BN_AXES, BN_DECAY, BN_EPS, BN_BATCH_STAT };
static const nl_argdef bn_args[] = {
    {"axes", NL_ARG_AXES, "{2}", NULL},
    {"decay_rate", NL_ARG_FLOAT, "0.9", NULL},
    {"eps", NL_ARG_FLOAT, "1e-5", NULL},
    {"batch_stat", NL_ARG_BOOL, "true", NULL},
};
enum { IN_X, IN_BETA, IN_GAMMA, IN_MEAN, IN_VAR };
static const char *const bn_in_names[] = {"x", "beta", "gamma", "mean", "variance"};

typedef struct bn_plan { int64_t outer, C, inner; } bn_plan;

static void bn_destroy(nl_func *f) { free(f->state); }

static int bn_setup(nl_func *f) {
    const nl_var *x = nl_in(f, IN_X);
    const int nd = x->ndim;
    char s1[160], s2[160], s3[160];
    bool kept[NL_MAX_NDIM] = {false};
    int lo = nd, hi = -1, nk = nl_arg_len(f, BN_AXES);
    for (int j = 0; j < nk; j++) {
        int a;
        if (nl_norm_axis("axes", nl_arg_at(f, BN_AXES, j), nd, &a)) return -1;
        if (kept[a]) return nl_error("argument 'axes' names axis %d twice", a + 1);
        kept[a] = true;
        if (a < lo) lo = a;
        if (a > hi) hi = a;
    }
    if (nk > 0 && hi - lo + 1 != nk)
        return nl_error("argument 'axes' (the kept channel axes) must be adjacent axes; got %d axes spread over %d..%d",
                        nk, lo + 1, hi + 1);
    int64_t stat[NL_MAX_NDIM];
    for (int d = 0; d < nd; d++) stat[d] = kept[d] ? x->shape[d] : 1;
    for (int i = IN_BETA; i <= IN_VAR; i++) {
        const nl_var *v = nl_in(f, i);
        if (v && !(v->ndim == nd && memcmp(v->shape, stat, (size_t)nd * sizeof(int64_t)) == 0))
            return nl_error("input '%s' has shape %s, expected %s (x's shape %s with 1 on every reduced axis)",
                            bn_in_names[i], nl_shape_str(s1, v->ndim, v->shape), nl_shape_str(s2, nd, stat),
                            nl_shape_str(s3, nd, x->shape));
    }
    if (!nl_arg_bool(f, BN_BATCH_STAT) && (!nl_in(f, IN_MEAN) || !nl_in(f, IN_VAR)))
        return nl_error("batch_stat = false normalizes with the running statistics: inputs 'mean' and 'variance' are required");
    bn_plan *p = calloc(1, sizeof *p);
    if (!p) return nl_error("out of memory");
    f->state = p;
    p->outer = 1; p->C = 1; p->inner = 1;
    for (int d = 0; d < nd; d++) {
        if (nk > 0 && d >= lo && d <= hi) p->C *= x->shape[d];
        else if (nk > 0 && d > hi) p->inner *= x->shape[d];
        else p->outer *= x->shape[d];
    }
    nl_set_out_shape(f, 0, nd, x->shape);
    return 0;
}

/* Optional per-channel input: data or NULL when absent. *fail is set when memory runs out. */
static const float *opt_data(nl_func *f, int i, bool *fail) {
    if (!nl_in(f, i)) return NULL;
    const float *p = nl_in_data(f, i);
    if (!p) *fail = true;
    return p;
}

/* The passes over x and dy, per channel (statistics) or per (outer, C) block (element-wise),
 * on the engine's threads when large. */
typedef struct bn_ctx {
    const float *x, *dy;
    float *y, *dx;
    const float *m, *s;             /* per channel: center, inverse std (backward) */
    const float *k;                 /* per channel: scale, shift (forward); k0, k1, k2 (backward) */
    double *a, *b;                  /* per channel sums */
    int64_t outer, C, inner;
    bool accum;
} bn_ctx;

/* a[c] = sum of x over channel c */
static void bn_sum_range(int64_t c0, int64_t c1, void *vc) {
    const bn_ctx *b = vc;
    for (int64_t c = c0; c < c1; c++) {
        double s = 0;
        for (int64_t o = 0; o < b->outer; o++) s += nl_vsum(b->x + (o * b->C + c) * b->inner, b->inner);
        b->a[c] = s;
    }
}

/* b[c] = sum of (x - mean_c)^2 over channel c, mean_c = a[c] (a double mean) */
static void bn_var_range(int64_t c0, int64_t c1, void *vc) {
    const bn_ctx *b = vc;
    for (int64_t c = c0; c < c1; c++) {
        const float m = (float)b->a[c];
        double s = 0;
        for (int64_t o = 0; o < b->outer; o++) s += nl_vsumsq_c(b->x + (o * b->C + c) * b->inner, b->inner, m);
        b->b[c] = s;
    }
}

/* y = (x - center_c) * scale_c + beta_c over blocks (o, c) in [j0, j1). Centering first
 * (as NNabla does) keeps the precision when |mean| >> std: x * scale + (beta - mean * scale)
 * cancels catastrophically in float. */
static void bn_norm_range(int64_t j0, int64_t j1, void *vc) {
    const bn_ctx *b = vc;
    const int64_t C = b->C, inner = b->inner;
    for (int64_t j = j0; j < j1; j++) {
        const int64_t c = j % C;
        const float sc = b->k[c], mc = b->k[C + c], bc = b->k[2 * C + c];
        const float *restrict x = b->x + j * inner;
        float *restrict y = b->y + j * inner;
        for (int64_t i = 0; i < inner; i++) y[i] = (x[i] - mc) * sc + bc;
    }
}

/* a[c] = sum dy, b[c] = sum dy * (x - m_c) over channel c */
static void bn_bsum_range(int64_t c0, int64_t c1, void *vc) {
    const bn_ctx *b = vc;
    for (int64_t c = c0; c < c1; c++) {
        double sa = 0, sb = 0;
        for (int64_t o = 0; o < b->outer; o++) {
            const int64_t base = (o * b->C + c) * b->inner;
            sa += nl_vsum(b->dy + base, b->inner);
            sb += nl_vdot_c(b->dy + base, b->x + base, b->inner, b->m[c]);
        }
        b->a[c] = sa;
        b->b[c] = sb;
    }
}

/* dx (+)= k0 dy + k1 (x - m) s + k2 over blocks (o, c) in [j0, j1) */
static void bn_dx_range(int64_t j0, int64_t j1, void *vc) {
    const bn_ctx *b = vc;
    const int64_t C = b->C, inner = b->inner;
    for (int64_t j = j0; j < j1; j++) {
        const int64_t c = j % C;
        const float k0 = b->k[c], k1 = b->k[C + c], k2 = b->k[2 * C + c], mc = b->m[c], sc = b->s[c];
        const float *restrict dd = b->dy + j * inner, *restrict xx = b->x + j * inner;
        float *restrict d = b->dx + j * inner;
        if (b->accum)
            for (int64_t i = 0; i < inner; i++) d[i] += k0 * dd[i] + k1 * (xx[i] - mc) * sc + k2;
        else
            for (int64_t i = 0; i < inner; i++) d[i] = k0 * dd[i] + k1 * (xx[i] - mc) * sc + k2;
    }
}

/* x: (outer, C, inner); beta, gamma, mean, variance: (C); y: (outer, C, inner).
 * scratch 0: saved batch mean (C) and 1/sqrt(var + eps) (C); scratch 1: doubles (2C);
 * scratch 2: per-channel scale, center and beta (3C). */
static int bn_forward(nl_func *f) {
    const bn_plan *p = f->state;
    const int64_t outer = p->outer, C = p->C, inner = p->inner, n = outer * inner;
    const bool batch_stat = nl_arg_bool(f, BN_BATCH_STAT);
    const double eps = nl_arg_float(f, BN_EPS), decay = nl_arg_float(f, BN_DECAY);
    bool fail = false;
    NL_PTR(const float *, x, nl_in_data(f, IN_X));
    const float *beta = opt_data(f, IN_BETA, &fail), *gamma = opt_data(f, IN_GAMMA, &fail);
    if (fail) return -1;
    NL_PTR(float *, y, nl_out_data(f, 0));
    NL_PTR(float *, saved, nl_func_scratch(f, 0, 2 * C + 1));
    NL_PTR(float *, wsd, nl_func_scratch(f, 1, 4 * C + 2));
    NL_PTR(float *, ss, nl_func_scratch(f, 2, 3 * C + 1));
    float *bmean = saved, *binv = saved + C, *scale = ss, *center = ss + C, *shift = ss + 2 * C;
    double *acc = (double *)(void *)wsd;

    if (batch_stat) {
        if (n == 0) {   /* empty batch: nothing to normalize, statistics unchanged */
            for (int64_t c = 0; c < 2 * C; c++) saved[c] = 0;
            return 0;
        }
        /* acc[C..2C): sums, then means; acc[0..C): sums of squared deviations */
        bn_ctx b = {.x = x, .a = acc + C, .b = acc, .outer = outer, .C = C, .inner = inner};
        nl_parallel_for(C, outer * inner, bn_sum_range, &b);
        for (int64_t c = 0; c < C; c++) acc[C + c] /= (double)n;
        nl_parallel_for(C, 2 * outer * inner, bn_var_range, &b);
        float *rm = NULL, *rv = NULL;   /* running statistics, updated in place */
        if (nl_in(f, IN_MEAN) && !(rm = nl_array_host(nl_in(f, IN_MEAN)->data, NL_READWRITE))) return -1;
        if (nl_in(f, IN_VAR) && !(rv = nl_array_host(nl_in(f, IN_VAR)->data, NL_READWRITE))) return -1;
        const double unbias = n > 1 ? (double)n / (double)(n - 1) : 1.0;
        for (int64_t c = 0; c < C; c++) {
            const double m = acc[C + c], v = acc[c] / (double)n;
            bmean[c] = (float)m;
            binv[c] = (float)(1.0 / sqrt(v + eps));
            if (rm) rm[c] = (float)(decay * rm[c] + (1.0 - decay) * m);
            if (rv) rv[c] = (float)(decay * rv[c] + (1.0 - decay) * v * unbias);
        }
        for (int64_t c = 0; c < C; c++) {
            scale[c] = binv[c] * (gamma ? gamma[c] : 1.0f);
            center[c] = bmean[c];
            shift[c] = beta ? beta[c] : 0.0f;
        }
    } else {
        NL_PTR(const float *, rm, nl_in_data(f, IN_MEAN));
        NL_PTR(const float *, rv, nl_in_data(f, IN_VAR));
        for (int64_t c = 0; c < C; c++) {
            float s = (float)(1.0 / sqrt((double)rv[c] + eps));
            scale[c] = s * (gamma ? gamma[c] : 1.0f);
            center[c] = rm[c];
            shift[c] = beta ? beta[c] : 0.0f;
        }
    }
    bn_ctx b = {.x = x, .y = y, .k = ss, .outer = outer, .C = C, .inner = inner};
    nl_parallel_for(outer * C, inner, bn_norm_range, &b);
    return 0;
}

/* Writes or adds v[c] (C values) into input i's gradient. */
static int put_channel_grad(nl_func *f, int i, bool accum, const double *v, double mul, int64_t C) {
    NL_PTR(float *, g, nl_in_grad(f, i, accum));
    for (int64_t c = 0; c < C; c++) {
        float val = (float)(v[c] * mul);
        if (accum) g[c] += val;
        else g[c] = val;
    }
    return 0;
}

/* dy: (outer, C, inner); dx: (outer, C, inner); dbeta, dgamma (, dmean, dvar): (C) */
static int bn_backward(nl_func *f, const bool *prop, const bool *accum) {
    const bn_plan *p = f->state;
    const int64_t outer = p->outer, C = p->C, inner = p->inner, n = outer * inner;
    const bool batch_stat = nl_arg_bool(f, BN_BATCH_STAT);
    const double eps = nl_arg_float(f, BN_EPS);
    bool any = false;
    for (int i = 0; i < 5; i++) any |= prop[i];
    if (!any) return 0;
    bool fail = false;
    NL_PTR(const float *, x, nl_in_data(f, IN_X));
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    const float *gamma = opt_data(f, IN_GAMMA, &fail);
    if (fail) return -1;
    /* per channel: center m, inverse std s */
    NL_PTR(float *, saved, nl_func_scratch(f, 0, 2 * C + 1));
    NL_PTR(float *, wsd, nl_func_scratch(f, 1, 4 * C + 2));
    double *sdy = (double *)(void *)wsd, *sdyx = sdy + C;   /* sum dy, sum dy * (x - m) * s */
    const float *m = saved, *s = saved + C;   /* batch_stat: saved by forward */
    if (!batch_stat) {
        NL_PTR(const float *, rm, nl_in_data(f, IN_MEAN));
        NL_PTR(const float *, rv, nl_in_data(f, IN_VAR));
        NL_PTR(float *, ws, nl_func_scratch(f, 3, C + 1));
        for (int64_t c = 0; c < C; c++) ws[c] = (float)(1.0 / sqrt((double)rv[c] + eps));
        m = rm; s = ws;
    }
    bn_ctx b = {.x = x, .dy = dy, .m = m, .s = s, .a = sdy, .b = sdyx,
                .outer = outer, .C = C, .inner = inner, .accum = accum[IN_X]};
    nl_parallel_for(C, 2 * outer * inner, bn_bsum_range, &b);
    for (int64_t c = 0; c < C; c++) sdyx[c] *= s[c];   /* now sum dy * xhat */

    if (prop[IN_X]) {
        NL_PTR(float *, dx, nl_in_grad(f, IN_X, accum[IN_X]));
        NL_PTR(float *, k, nl_func_scratch(f, 2, 3 * C + 1));   /* forward's scale/shift slot */
        for (int64_t c = 0; c < C; c++) {
            const float g = gamma ? gamma[c] : 1.0f, sc = s[c];
            /* dx = k0 * dy + k1 * xhat + k2 */
            k[c] = g * sc;
            if (batch_stat && n > 0) {
                k[C + c] = (float)(-(double)g * sc * sdyx[c] / (double)n);
                k[2 * C + c] = (float)(-(double)g * sc * sdy[c] / (double)n);
            } else {
                k[C + c] = 0;
                k[2 * C + c] = 0;
            }
        }
        b.dx = dx;
        b.k = k;
        nl_parallel_for(outer * C, 2 * inner, bn_dx_range, &b);
    }
    if (prop[IN_BETA] && put_channel_grad(f, IN_BETA, accum[IN_BETA], sdy, 1.0, C)) return -1;
    if (prop[IN_GAMMA] && put_channel_grad(f, IN_GAMMA, accum[IN_GAMMA], sdyx, 1.0, C)) return -1;
    for (int i = IN_MEAN; i <= IN_VAR; i++) {
        if (!prop[i]) continue;
        if (batch_stat) {   /* running statistics get no gradient */
            if (accum[i]) continue;
            NL_PTR(float *, g, nl_in_grad(f, i, false));
            memset(g, 0, (size_t)nl_in(f, i)->size * sizeof(float));
            continue;
        }
        NL_PTR(float *, g, nl_in_grad(f, i, accum[i]));
        for (int64_t c = 0; c < C; c++) {
            const double gm = gamma ? gamma[c] : 1.0, sc = s[c];
            /* dmean = -gamma*s*sum dy;  dvar = -0.5*gamma*s^2 * sum dy*xhat */
            double v = i == IN_MEAN ? -gm * sc * sdy[c] : -0.5 * gm * sc * sc * sdyx[c];
            if (accum[i]) g[c] += (float)v;
            else g[c] = (float)v;
        }
    }
    return 0;
}

const nl_fdef nl_fdef_batch_normalization = {
    .name = "batch_normalization",
    .doc = "y = gamma * (x - mean) / sqrt(var + eps) + beta per channel (axes: the kept axes, default {2}); "
           "batch_stat = true uses batch statistics and updates the running mean/variance in place "
           "(decay_rate, unbiased variance); false uses the running statistics",
    .in_names = "x,beta,gamma,mean,variance", .n_in = 1, .n_opt_in = 4, .n_out = 1,
    .n_args = 4, .args = bn_args,
    .setup = bn_setup, .forward = bn_forward, .backward = bn_backward, .destroy = bn_destroy,
    .grad_in_data = (1u << IN_X) | (1u << IN_GAMMA) | (1u << IN_MEAN) | (1u << IN_VAR),
    .grad_out_data = 0,
};
