/*
 * stochastic_plan.h - what the CPU implementations of the stochastic functions
 * (stochastic.c) share with their CUDA twins (cuda/stochastic.cu): the argument positions,
 * the node state (its generator, the per-sample index maps), and the draws.
 *
 * One rule: a seed gives the same numbers on every backend. So every random value is drawn
 * on the host, through the helpers below, with the node's generator (nl_stoch_rng) and in
 * the order the CPU draws them; the CPU then applies the draws in place, the CUDA code
 * uploads them (keep bits, per-sample offsets/flips/shifts, erase patches and values,
 * uniforms) and applies them on the device. What both apply per element (the index maps
 * of crop/flip/shift, dropout's product, random_choice's picks) is written once here (NL_HD:
 * compiled for the host and the device).
 */
#ifndef NNLUA_STOCHASTIC_PLAN_H
#define NNLUA_STOCHASTIC_PLAN_H
#include "../src/function.h"
#include "elementwise_math.h"   /* NL_HD */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

/* ---- argument positions ---- */
enum { DO_P, DO_SEED };                                      /* dropout */
enum { RN_A, RN_B, RN_SHAPE, RN_SEED };                      /* rand, randint, randn */
enum { RC_SHAPE, RC_REPLACE, RC_SEED };                      /* random_choice */
enum { CR_SHAPE, CR_BASE_AXIS, CR_SEED };                    /* random_crop */
enum { FL_AXES, FL_BASE_AXIS, FL_SEED };                     /* random_flip */
enum { SH_SHIFTS, SH_BORDER, SH_CONSTANT, SH_BASE_AXIS, SH_SEED };   /* random_shift */
enum { BORDER_NEAREST, BORDER_REFLECT, BORDER_CONSTANT };
enum { RE_PROB, RE_AREA, RE_ASPECT, RE_REPL, RE_N, RE_SHARE, RE_INPLACE, RE_BASE_AXIS, RE_SEED,
       RE_CHANNEL_LAST, RE_STE };                            /* random_erase */

/* What a node draws: rand's family, or the index map of crop/flip/shift. */
enum { NL_GEN_RAND, NL_GEN_RANDINT, NL_GEN_RANDN };
enum { NL_REMAP_CROP, NL_REMAP_FLIP, NL_REMAP_SHIFT };

/* ---- the node state ---- */

/* Per-sample index maps of crop/flip/shift: for each output axis d from base_axis on,
 * map[d][i] is the input index along d for output index i, or -1 (a constant fill). */
typedef struct nl_remap {
    int nd;                       /* axes from base_axis on (>= 1) */
    int64_t S;                    /* samples: prod(shape[1..base_axis-1]) */
    int64_t ys[NL_MAX_NDIM];      /* output sizes of those axes */
    int64_t xs[NL_MAX_NDIM];      /* input sizes of those axes */
    int64_t xstr[NL_MAX_NDIM];    /* input strides of those axes */
    int64_t xblock, yblock;       /* elements per sample */
    int64_t T;                    /* map entries per sample: sum of ys */
    int64_t moff[NL_MAX_NDIM];    /* offset of axis d's map within a sample's maps */
} nl_remap;

typedef struct nl_rstate {
    nl_rng rng;
    bool own;                     /* seed >= 0: rng is this node's */
    int kind;                     /* NL_GEN_* or NL_REMAP_* */
    nl_remap rm;
    int64_t *ibuf;                /* index maps, then the draws per (sample, axis); sample indices */
    size_t ibuf_n;
    double *dbuf;                 /* weights (random_choice) */
    size_t dbuf_n;
} nl_rstate;

/* The node's generator: its own (seed >= 0) or NULL, the engine's. */
static inline nl_rng *nl_stoch_rng(nl_func *f) {
    nl_rstate *st = (nl_rstate *)f->state;
    return st->own ? &st->rng : NULL;
}

/* ---- dropout(x, p, seed): keep where u >= p, y = x * keep / (1 - p) ---- */

static inline bool nl_dropout_keep(nl_rng *g, double p) { return nl_rngs_uniform01(g) >= p; }
static inline float nl_dropout_scale(double p) { return (float)(1.0 / (1.0 - p)); }
/* y (or dx from dy) for one element */
NL_HD float nl_dropout_apply(float x, bool keep, float scale) { return x * (keep ? 1.0f : 0.0f) * scale; }

/* ---- rand, randint, randn: n values in order ---- */

static inline void nl_gen_draw(nl_func *f, nl_rng *g, float *y, int64_t n) {
    const int kind = ((const nl_rstate *)f->state)->kind;
    if (kind == NL_GEN_RAND) {
        const double lo = nl_arg_float(f, RN_A), hi = nl_arg_float(f, RN_B);
        for (int64_t i = 0; i < n; i++) {
            const float v = (float)(lo + (hi - lo) * nl_rngs_uniform01(g));
            y[i] = v < (float)hi || lo == hi ? v : (float)lo;    /* rounding never reaches high */
        }
    } else if (kind == NL_GEN_RANDINT) {
        const int64_t lo = nl_arg_int(f, RN_A), hi = nl_arg_int(f, RN_B);
        for (int64_t i = 0; i < n; i++) y[i] = (float)(lo + nl_rngs_below(g, hi - lo));
    } else {
        const double mu = nl_arg_float(f, RN_A), sigma = nl_arg_float(f, RN_B);
        for (int64_t i = 0; i < n; i++) y[i] = (float)(mu + sigma * nl_rngs_normal(g));
    }
}

/* ---- random_choice(x, w, shape, replace): populations of W along the last axis ---- */

/* Checks one population's weights: -1 when fine; else the first bad weight's position
 * (0..W-1), W (no positive weight) or W + 1 (fewer positive weights than the inner samples
 * drawn without replacement). */
NL_HD int64_t nl_rc_check(const float *wb, int64_t W, int64_t inner, bool replace) {
    int64_t positive = 0;
    for (int64_t i = 0; i < W; i++) {
        if (!(wb[i] >= 0) || !isfinite(wb[i])) return i;
        positive += wb[i] > 0;
    }
    if (positive == 0) return W;
    if (!replace && positive < inner) return W + 1;
    return -1;
}

/* The error for population b (0-based) whose check gave code (>= 0). Always -1. */
static inline int nl_rc_fail(const float *wb, int64_t W, int64_t b, int64_t inner, int64_t code) {
    if (code < W)
        return nl_error("input 'w' has weight %g at position %lld (weights are finite and >= 0)",
                        (double)wb[code], (long long)(b * W + code + 1));
    if (code == W) return nl_error("input 'w' has no positive weight in population %lld", (long long)(b + 1));
    int64_t positive = 0;
    for (int64_t i = 0; i < W; i++) positive += wb[i] > 0;
    return nl_error("input 'w' has %lld positive weights in population %lld, fewer than the %lld "
                    "samples drawn without replacement", (long long)positive, (long long)(b + 1),
                    (long long)inner);
}

/* c[i] = w[0] + ... + w[i], summed in order in double */
NL_HD void nl_rc_cumsum(const float *wb, int64_t W, double *c) {
    double acc = 0;
    for (int64_t i = 0; i < W; i++) c[i] = acc += wb[i];
}

/* With replacement: the position that u01 ~ U[0, 1) picks from the cumulative weights c. */
NL_HD int64_t nl_rc_pick_replace(const float *wb, const double *c, int64_t W, double u01) {
    const double u = u01 * c[W - 1];
    int64_t lo = 0, hi = W - 1;
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (u < c[mid]) hi = mid; else lo = mid + 1;
    }
    while (wb[lo] <= 0 && lo > 0) lo--;      /* rounding at the top end */
    return lo;
}

/* Without replacement: the position that u01 picks from the weights left in c (doubles of
 * the population's weights, 0 once drawn); removes it. */
NL_HD int64_t nl_rc_pick_without(double *c, int64_t W, double u01) {
    double left = 0;
    int64_t lastpos = -1;
    for (int64_t i = 0; i < W; i++) if (c[i] > 0) { left += c[i]; lastpos = i; }
    const double u = u01 * left;
    double acc = 0;
    int64_t pick = lastpos;
    for (int64_t i = 0; i < W; i++) {
        if (c[i] <= 0) continue;
        acc += c[i];
        if (u < acc) { pick = i; break; }
    }
    c[pick] = 0;
    return pick;
}

/* ---- random_crop, random_flip, random_shift: one draw per (sample, axis) ---- */

/* Marks the axes that random_flip flips (which[d] for every axis d of x). 0 or -1. */
static inline int nl_flip_axes(nl_func *f, int ba, bool *which) {
    const nl_var *x = nl_in(f, 0);
    for (int d = 0; d < NL_MAX_NDIM; d++) which[d] = false;
    if (!nl_arg_given(f, FL_AXES)) { which[x->ndim - 1] = true; return 0; }
    for (int j = 0; j < nl_arg_len(f, FL_AXES); j++) {
        int a;
        if (nl_norm_axis("axes entry", nl_arg_at(f, FL_AXES, j), x->ndim, &a)) return -1;
        if (a < ba)
            return nl_error("axes entry %lld is a sample axis (before base_axis %d); only axes from base_axis on "
                            "are flipped", (long long)nl_arg_at(f, FL_AXES, j), ba + 1);
        which[a] = true;
    }
    return 0;
}

/* The largest shift of axis d (0-based) of random_shift */
static inline int64_t nl_shift_of(nl_func *f, int d) {
    if (!nl_arg_given(f, SH_SHIFTS)) return 0;
    const int n = nl_arg_len(f, SH_SHIFTS), j = d - (nl_in(f, 0)->ndim - n);
    return j >= 0 ? nl_arg_at(f, SH_SHIFTS, j) : 0;
}

/* Draws par[s nd + d] for every sample s and axis d (samples, then axes, as the CPU always
 * has): crop the window's start, flip 1 (reversed) or 0, shift the shift. 0 or -1. */
static inline int nl_remap_draw(nl_func *f, nl_rng *g, int64_t *par) {
    const nl_rstate *st = (const nl_rstate *)f->state;
    const nl_remap *r = &st->rm;
    const int ba = nl_in(f, 0)->ndim - r->nd;
    bool which[NL_MAX_NDIM];
    int64_t smax[NL_MAX_NDIM];
    if (st->kind == NL_REMAP_FLIP && nl_flip_axes(f, ba, which)) return -1;
    if (st->kind == NL_REMAP_SHIFT)
        for (int d = 0; d < r->nd; d++) smax[d] = nl_shift_of(f, ba + d);
    for (int64_t s = 0; s < r->S; s++)
        for (int d = 0; d < r->nd; d++) {
            int64_t v;
            if (st->kind == NL_REMAP_CROP)
                v = r->xs[d] > r->ys[d] ? nl_rngs_below(g, r->xs[d] - r->ys[d] + 1) : 0;
            else if (st->kind == NL_REMAP_FLIP)
                v = which[ba + d] && (nl_rngs_next(g) >> 63);
            else
                v = smax[d] > 0 ? nl_rngs_below(g, 2 * smax[d] + 1) - smax[d] : 0;
            par[s * r->nd + d] = v;
        }
    return 0;
}

/* The input index along one axis that output index i reads (kind NL_REMAP_*, par its draw,
 * n the axis's output size, mode random_shift's border): -1 for a constant fill. */
NL_HD int64_t nl_remap_at(int kind, int mode, int64_t par, int64_t n, int64_t i) {
    if (kind == NL_REMAP_CROP) return par + i;
    if (kind == NL_REMAP_FLIP) return par ? n - 1 - i : i;
    int64_t k = i - par;
    if (k < 0 || k >= n) {
        if (mode == BORDER_NEAREST) k = k < 0 ? 0 : n - 1;
        else if (mode == BORDER_CONSTANT) k = -1;
        else {                              /* reflect: ... c b a | a b c | c b a ... */
            int64_t a = k % (2 * n);
            if (a < 0) a += 2 * n;
            k = a >= n ? 2 * n - 1 - a : a;
        }
    }
    return k;
}

/* The inverse: the output indices along the axis that read input index k, ascending, as
 * two ranges r[0]..r[1] and r[2]..r[3] (lo > hi: empty). Crop, flip and constant shifts
 * read each input at most once; 'nearest' reads the border inputs over a range, 'reflect'
 * an input at most twice. */
NL_HD void nl_remap_from(int kind, int mode, int64_t par, int64_t n, int64_t k, int64_t *r) {
    int64_t lo0, hi0, lo1 = 1, hi1 = 0;
    if (kind == NL_REMAP_CROP) lo0 = hi0 = k - par;
    else if (kind == NL_REMAP_FLIP) lo0 = hi0 = par ? n - 1 - k : k;
    else if (mode == BORDER_CONSTANT) lo0 = hi0 = k + par;
    else if (mode == BORDER_NEAREST) {      /* i - par clamped is monotone in i */
        lo0 = k == 0 ? 0 : k + par;
        hi0 = k == n - 1 ? n - 1 : k + par;
    } else {                                /* i - par = k or 2n - 1 - k (mod 2n) */
        const int64_t m = 2 * n;
        int64_t a = (k + par) % m, b = (m - 1 - k + par) % m;
        if (a < 0) a += m;
        if (b < 0) b += m;
        lo0 = hi0 = a < b ? a : b;
        lo1 = hi1 = a < b ? b : a;
    }
    r[0] = lo0 < 0 ? 0 : lo0;
    r[1] = hi0 > n - 1 ? n - 1 : hi0;
    r[2] = lo1 < 0 ? 0 : lo1;
    r[3] = hi1 > n - 1 ? n - 1 : hi1;
}

/* ---- random_erase: x (samples..., C, H, W), or (samples..., H, W, C) ---- */

/* B samples, C channels, H x W pixels; stride of c, h, w in a sample */
typedef struct nl_erase_dims { int64_t B, C, H, W, sc, sh, sw; } nl_erase_dims;

static inline int nl_erase_dims_of(nl_func *f, nl_erase_dims *e) {
    const nl_var *x = nl_in(f, 0);
    char s1[160];
    int ba;
    if (x->ndim == 0) return nl_error("input 'x' is 0-d; it must be (samples..., C, H, W)");
    if (nl_norm_axis("base_axis", nl_arg_int(f, RE_BASE_AXIS), x->ndim, &ba)) return -1;
    if (x->ndim - ba != 3)
        return nl_error("x %s has %d axes from base_axis %d; it must have 3 (C, H, W, or H, W, C with "
                        "channel_last)", nl_shape_str(s1, x->ndim, x->shape), x->ndim - ba, ba + 1);
    e->B = 1;
    for (int d = 0; d < ba; d++) e->B *= x->shape[d];
    if (nl_arg_bool(f, RE_CHANNEL_LAST)) {
        e->H = x->shape[ba]; e->W = x->shape[ba + 1]; e->C = x->shape[ba + 2];
        e->sc = 1; e->sw = e->C; e->sh = e->W * e->C;
    } else {
        e->C = x->shape[ba]; e->H = x->shape[ba + 1]; e->W = x->shape[ba + 2];
        e->sw = 1; e->sh = e->W; e->sc = e->H * e->W;
    }
    return 0;
}

/* random_erase's draws in the CPU's order: for each try n, sample b and channel c, a new
 * patch when c == 0 or !share (area, aspect, on, top, left), then, when it is on, he * we
 * replacement values row by row (nl_erase_value, called by the walker's user). */
typedef struct nl_erase_walk {
    nl_erase_dims e;
    int64_t N, t, total;          /* tries; the step (n, b, c) flattened; N B C */
    bool share;
    double prob, a0, a1, r0, r1, v0, v1;
    int64_t n, b, c;              /* the current try, sample, channel */
    bool fresh;                   /* this step drew a new patch */
    bool on;                      /* the current patch erases */
    int64_t ys, xs, he, we;       /* its top, left, height and width */
} nl_erase_walk;

static inline void nl_erase_walk_init(nl_erase_walk *w, nl_func *f, const nl_erase_dims *e) {
    w->e = *e;
    w->N = nl_arg_int(f, RE_N);
    w->t = -1;
    w->total = w->N * e->B * e->C;
    w->share = nl_arg_bool(f, RE_SHARE);
    w->prob = nl_arg_float(f, RE_PROB);
    w->a0 = f->args[RE_AREA].v[0]; w->a1 = f->args[RE_AREA].v[1];
    w->r0 = f->args[RE_ASPECT].v[0]; w->r1 = f->args[RE_ASPECT].v[1];
    w->v0 = f->args[RE_REPL].v[0]; w->v1 = f->args[RE_REPL].v[1];
    w->n = w->b = w->c = 0;
    w->fresh = w->on = false;
    w->ys = w->xs = w->he = w->we = 0;
}

/* Moves to the next (n, b, c), drawing a patch when one starts there; false at the end. */
static inline bool nl_erase_walk_next(nl_erase_walk *w, nl_rng *g) {
    if (++w->t >= w->total) return false;
    const nl_erase_dims *e = &w->e;
    w->c = w->t % e->C;
    w->b = w->t / e->C % e->B;
    w->n = w->t / (e->C * e->B);
    w->fresh = w->c == 0 || !w->share;
    if (w->fresh) {
        const double se = (w->a0 + (w->a1 - w->a0) * nl_rngs_uniform01(g)) * (double)(e->H * e->W);
        const double re = w->r0 + (w->r1 - w->r0) * nl_rngs_uniform01(g);
        w->he = (int64_t)sqrt(se * re);
        w->we = (int64_t)sqrt(se / re);
        if (w->he > e->H) w->he = e->H;
        if (w->we > e->W) w->we = e->W;
        w->on = nl_rngs_uniform01(g) < w->prob;
        w->ys = nl_rngs_below(g, e->H - w->he + 1);
        w->xs = nl_rngs_below(g, e->W - w->we + 1);
    }
    return true;
}

/* The next replacement value of the current patch. */
static inline float nl_erase_value(const nl_erase_walk *w, nl_rng *g) {
    return (float)(w->v0 + (w->v1 - w->v0) * nl_rngs_uniform01(g));
}

#endif
