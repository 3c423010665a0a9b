/*
 * stochastic.c - random functions, NNabla semantics:
 *   dropout(x, p=0.5, seed=-1)            y = x / (1 - p) where u >= p (u ~ U[0, 1)), else 0;
 *                                         drops on every forward (as NNabla: apply it only
 *                                         when training); dx = dy * mask / (1 - p)
 *   rand(low=0, high=1, shape={}, seed=-1)       y ~ U[low, high)
 *   randint(low=0, high=1, shape={}, seed=-1)    y ~ integers in [low, high) (as floats)
 *   randn(mu=0, sigma=1, shape={}, seed=-1)      y ~ N(mu, sigma^2)
 *   random_choice(x, w, shape={}, replace=true, seed=-1)
 *                                         draws prod(shape) samples from each population
 *                                         along x's last axis with weights w (x's shape);
 *                                         y: x.shape[1..-2] .. shape (or .. {1}); backward
 *                                         routes dy to the chosen positions of x, and (as
 *                                         NNabla does) of w
 *   random_crop(x, shape=x.shape, base_axis=2, seed=-1)
 *                                         a random window of `shape` over the last #shape
 *                                         axes, per sample (the axes before base_axis)
 *   random_flip(x, axes={-1}, base_axis=2, seed=-1)
 *                                         reverses each of `axes` with probability 1/2, per
 *                                         sample
 *   random_shift(x, shifts={0...}, border_mode='nearest', constant_value=0, base_axis=2, seed=-1)
 *                                         shifts the last #shifts axes by s ~ U{-shift..shift},
 *                                         per sample: y[i] = x[i - s] with 'nearest' (clamp),
 *                                         'reflect' or 'constant' borders
 *   random_erase(x, prob=0.5, area_ratios={0.02, 0.4}, aspect_ratios={0.3, 3.3333},
 *                replacements={0, 255}, n=1, share=true, inplace=false, base_axis=2,
 *                seed=-1, channel_last=false, ste_fine_grained=true)
 *                                         x: (samples..., C, H, W) (or H, W, C); per sample
 *                                         and each of n tries, with probability prob a
 *                                         He x We patch (area ~ U(area_ratios) H W, aspect
 *                                         ~ U(aspect_ratios)) is filled with values
 *                                         ~ U(replacements), the same patch on every channel
 *                                         when share; backward passes dy outside the erased
 *                                         pixels (everywhere without ste_fine_grained)
 * seed = -1 draws from the engine's generator (nn.seed makes runs reproducible); seed >= 0
 * gives the node a generator of its own, seeded when the node is made and advanced by
 * every forward (two nodes with one seed give the same numbers).
 * The crop/flip/shift family gathers through per-sample index maps computed in forward;
 * backward scatters dy through the same maps.
 * Every forward draws first (stochastic_plan.h's helpers, shared with cuda/stochastic.cu,
 * which draws the same numbers on the host and applies them on the device) and applies
 * what it drew after.
 */
#include "stochastic_plan.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- shared: the node's generator and the per-sample index maps ----------------------- */

static void rstate_destroy(nl_func *f) {
    nl_rstate *st = f->state;
    if (!st) return;
    free(st->ibuf);
    free(st->dbuf);
    free(st);
    f->state = NULL;
}

/* Creates f->state with the generator chosen by argument k (seed) and buffers of ni
 * int64 and nd doubles. */
static int rstate_new(nl_func *f, int k, size_t ni, size_t nd) {
    const int64_t seed = nl_arg_int(f, k);
    if (seed < -1)
        return nl_error("argument 'seed' must be -1 (the engine's generator) or >= 0, got %lld", (long long)seed);
    nl_rstate *st = calloc(1, sizeof *st);
    if (!st) return nl_error("out of memory");
    f->state = st;
    if (ni) { st->ibuf = malloc(ni * sizeof(int64_t)); st->ibuf_n = ni; }
    if (nd) { st->dbuf = malloc(nd * sizeof(double)); st->dbuf_n = nd; }
    if ((ni && !st->ibuf) || (nd && !st->dbuf)) return nl_error("out of memory");
    if (seed >= 0) { st->own = true; nl_rng_init(&st->rng, (uint64_t)seed); }
    return 0;
}

/* Fills r for input x, base axis ba (0-based, < ndim) and output sizes y (ndim entries). */
static void remap_init(nl_remap *r, const nl_var *x, int ba, const int64_t *y) {
    r->nd = x->ndim - ba;
    r->S = 1;
    for (int d = 0; d < ba; d++) r->S *= x->shape[d];
    r->xblock = r->yblock = 1;
    r->T = 0;
    for (int d = r->nd - 1; d >= 0; d--) {
        r->xs[d] = x->shape[ba + d];
        r->ys[d] = y[ba + d];
        r->xstr[d] = r->xblock;
        r->xblock *= r->xs[d];
        r->yblock *= r->ys[d];
    }
    for (int d = 0; d < r->nd; d++) { r->moff[d] = r->T; r->T += r->ys[d]; }
}

/* y[sample][i...] = x[sample][map(i)...] (fill where a map entry is -1) */
static void remap_gather(const nl_remap *r, const int64_t *maps, const float *x, float *y, float fill) {
    if (r->yblock == 0) return;
    const int nd = r->nd, last = nd - 1;
    const int64_t nl = r->ys[last], sl = r->xstr[last];
    for (int64_t s = 0; s < r->S; s++) {
        const int64_t *m = maps + s * r->T;
        const float *xb = x + s * r->xblock;
        float *yb = y + s * r->yblock;
        int64_t idx[NL_MAX_NDIM] = {0};
        for (int64_t o = 0; o < r->yblock; o += nl) {
            int64_t base = 0;
            bool out = false;
            for (int d = 0; d < last; d++) {
                const int64_t k = m[r->moff[d] + idx[d]];
                if (k < 0) out = true;
                base += k * r->xstr[d];
            }
            const int64_t *ml = m + r->moff[last];
            for (int64_t i = 0; i < nl; i++)
                yb[o + i] = (out || ml[i] < 0) ? fill : xb[base + ml[i] * sl];
            for (int d = last - 1; d >= 0; d--) {
                if (++idx[d] < r->ys[d]) break;
                idx[d] = 0;
            }
        }
    }
}

/* dx[sample][map(i)...] += dy[sample][i...] (entries mapped to -1 get nothing) */
static void remap_scatter(const nl_remap *r, const int64_t *maps, const float *dy, float *dx) {
    if (r->yblock == 0) return;
    const int nd = r->nd, last = nd - 1;
    const int64_t nl = r->ys[last], sl = r->xstr[last];
    for (int64_t s = 0; s < r->S; s++) {
        const int64_t *m = maps + s * r->T;
        float *xb = dx + s * r->xblock;
        const float *yb = dy + s * r->yblock;
        int64_t idx[NL_MAX_NDIM] = {0};
        for (int64_t o = 0; o < r->yblock; o += nl) {
            int64_t base = 0;
            bool out = false;
            for (int d = 0; d < last; d++) {
                const int64_t k = m[r->moff[d] + idx[d]];
                if (k < 0) out = true;
                base += k * r->xstr[d];
            }
            const int64_t *ml = m + r->moff[last];
            if (!out)
                for (int64_t i = 0; i < nl; i++)
                    if (ml[i] >= 0) xb[base + ml[i] * sl] += yb[o + i];
            for (int d = last - 1; d >= 0; d--) {
                if (++idx[d] < r->ys[d]) break;
                idx[d] = 0;
            }
        }
    }
}

/* The backward of the remapping functions: dx = 0 (unless accumulating), then scatter. */
static int remap_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    nl_rstate *st = f->state;
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    NL_PTR(float *, dx, nl_in_grad(f, 0, accum[0]));
    if (!accum[0]) memset(dx, 0, (size_t)nl_in(f, 0)->size * sizeof(float));
    remap_scatter(&st->rm, st->ibuf, dy, dx);
    return 0;
}

/* The forward of the remapping functions: the draws per (sample, axis) (after the maps in
 * ibuf), the maps they give, and the gather. */
static int remap_forward(nl_func *f) {
    nl_rstate *st = f->state;
    const nl_remap *r = &st->rm;
    const int mode = st->kind == NL_REMAP_SHIFT ? (int)nl_arg_int(f, SH_BORDER) : 0;
    const float fill = st->kind == NL_REMAP_SHIFT ? (float)nl_arg_float(f, SH_CONSTANT) : 0.0f;
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(float *, y, nl_out_data(f, 0));
    int64_t *par = st->ibuf + r->S * r->T;
    if (nl_remap_draw(f, nl_stoch_rng(f), par)) return -1;
    for (int64_t s = 0; s < r->S; s++) {
        int64_t *m = st->ibuf + s * r->T;
        for (int d = 0; d < r->nd; d++)
            for (int64_t i = 0; i < r->ys[d]; i++)
                m[r->moff[d] + i] = nl_remap_at(st->kind, mode, par[s * r->nd + d], r->ys[d], i);
    }
    remap_gather(r, st->ibuf, x, y, fill);
    return 0;
}

/* Checks a shape argument (k) and returns its length, or -1. */
static int shape_arg(nl_func *f, int k, int64_t *shape) {
    const int n = nl_arg_len(f, k);
    if (n > NL_MAX_NDIM) return nl_error("argument 'shape' has %d entries (at most %d axes)", n, NL_MAX_NDIM);
    for (int j = 0; j < n; j++) {
        shape[j] = nl_arg_at(f, k, j);
        if (shape[j] < 0)
            return nl_error("argument 'shape' entry %d is %lld (sizes are >= 0)", j + 1, (long long)shape[j]);
    }
    return n;
}

/* ---- dropout ------------------------------------------------------------------------ */

static const nl_argdef dropout_args[] = {
    {"p", NL_ARG_FLOAT, "0.5", NULL},
    {"seed", NL_ARG_INT, "-1", NULL},
};

static int dropout_setup(nl_func *f) {
    const double p = nl_arg_float(f, DO_P);
    if (!(p >= 0.0 && p < 1.0)) return nl_error("argument 'p' must be in [0, 1), got %g", p);
    if (rstate_new(f, DO_SEED, 0, 0)) return -1;
    const nl_var *x = nl_in(f, 0);
    nl_set_out_shape(f, 0, x->ndim, x->shape);
    return 0;
}

/* x, y: same shape; the mask (1 kept, 0 dropped) stays in scratch 0 for backward */
static int dropout_forward(nl_func *f) {
    const int64_t n = nl_in(f, 0)->size;
    const double p = nl_arg_float(f, DO_P);
    const float scale = nl_dropout_scale(p);
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(float *, y, nl_out_data(f, 0));
    NL_PTR(float *, m, nl_func_scratch(f, 0, n + 1));
    nl_rng *g = nl_stoch_rng(f);
    for (int64_t i = 0; i < n; i++) m[i] = nl_dropout_keep(g, p) ? 1.0f : 0.0f;
    for (int64_t i = 0; i < n; i++) y[i] = nl_dropout_apply(x[i], m[i] != 0.0f, scale);
    return 0;
}

/* dx = dy * mask / (1 - p) */
static int dropout_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    const int64_t n = nl_in(f, 0)->size;
    const float scale = nl_dropout_scale(nl_arg_float(f, DO_P));
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    NL_PTR(const float *, m, nl_func_scratch(f, 0, n + 1));
    NL_PTR(float *, dx, nl_in_grad(f, 0, accum[0]));
    if (accum[0]) for (int64_t i = 0; i < n; i++) dx[i] += nl_dropout_apply(dy[i], m[i] != 0.0f, scale);
    else for (int64_t i = 0; i < n; i++) dx[i] = nl_dropout_apply(dy[i], m[i] != 0.0f, scale);
    return 0;
}

const nl_fdef nl_fdef_dropout = {
    .name = "dropout",
    .doc = "y = x / (1 - p) with probability 1 - p, else 0 (p default 0.5), on every forward (apply it "
           "only when training); seed -1: the engine's generator",
    .in_names = "x", .n_in = 1, .n_out = 1,
    .n_args = 2, .args = dropout_args,
    .setup = dropout_setup, .forward = dropout_forward, .backward = dropout_backward,
    .destroy = rstate_destroy,
};

/* ---- rand, randint, randn ------------------------------------------------------------ */

static const nl_argdef rand_args[] = {
    {"low", NL_ARG_FLOAT, "0", NULL},
    {"high", NL_ARG_FLOAT, "1", NULL},
    {"shape", NL_ARG_INTS, "{}", NULL},
    {"seed", NL_ARG_INT, "-1", NULL},
};
static const nl_argdef randint_args[] = {
    {"low", NL_ARG_INT, "0", NULL},
    {"high", NL_ARG_INT, "1", NULL},
    {"shape", NL_ARG_INTS, "{}", NULL},
    {"seed", NL_ARG_INT, "-1", NULL},
};
static const nl_argdef randn_args[] = {
    {"mu", NL_ARG_FLOAT, "0", NULL},
    {"sigma", NL_ARG_FLOAT, "1", NULL},
    {"shape", NL_ARG_INTS, "{}", NULL},
    {"seed", NL_ARG_INT, "-1", NULL},
};

static int gen_setup(nl_func *f) {
    const double a = nl_arg_float(f, RN_A), b = nl_arg_float(f, RN_B);
    const char *name = f->def->name;
    if (!isfinite(a) || !isfinite(b)) return nl_error("arguments must be finite numbers, got %g and %g", a, b);
    if (strcmp(name, "rand") == 0 && !(a <= b))
        return nl_error("argument 'low' (%g) must not be greater than 'high' (%g)", a, b);
    if (strcmp(name, "randint") == 0 && !(a < b))
        return nl_error("argument 'low' (%g) must be less than 'high' (%g): values are drawn from [low, high)", a, b);
    if (strcmp(name, "randn") == 0 && !(b >= 0))
        return nl_error("argument 'sigma' must be >= 0, got %g", b);
    int64_t shape[NL_MAX_NDIM];
    const int n = shape_arg(f, RN_SHAPE, shape);
    if (n < 0) return -1;
    if (rstate_new(f, RN_SEED, 0, 0)) return -1;
    ((nl_rstate *)f->state)->kind = strcmp(name, "rand") == 0 ? NL_GEN_RAND
                                  : strcmp(name, "randint") == 0 ? NL_GEN_RANDINT : NL_GEN_RANDN;
    nl_set_out_shape(f, 0, n, shape);
    return 0;
}

/* y: the shape argument; rand, randint and randn (the node's kind) */
static int gen_forward(nl_func *f) {
    NL_PTR(float *, y, nl_out_data(f, 0));
    nl_gen_draw(f, nl_stoch_rng(f), y, nl_out(f, 0)->size);
    return 0;
}

static int no_backward(nl_func *f, const bool *prop, const bool *accum) {
    (void)f; (void)prop; (void)accum;
    return 0;
}

const nl_fdef nl_fdef_rand = {
    .name = "rand",
    .doc = "y ~ uniform on [low, high) (defaults 0, 1) with the given shape (default {}, 0-d); no inputs; "
           "seed -1: the engine's generator",
    .in_names = "", .n_in = 0, .n_out = 1,
    .n_args = 4, .args = rand_args,
    .setup = gen_setup, .forward = gen_forward, .backward = no_backward, .destroy = rstate_destroy,
};

const nl_fdef nl_fdef_randint = {
    .name = "randint",
    .doc = "y ~ uniform integers in [low, high) (defaults 0, 1), stored as floats, with the given shape; "
           "no inputs; seed -1: the engine's generator",
    .in_names = "", .n_in = 0, .n_out = 1,
    .n_args = 4, .args = randint_args,
    .setup = gen_setup, .forward = gen_forward, .backward = no_backward, .destroy = rstate_destroy,
};

const nl_fdef nl_fdef_randn = {
    .name = "randn",
    .doc = "y ~ normal with mean mu and standard deviation sigma (defaults 0, 1) with the given shape; "
           "no inputs; seed -1: the engine's generator",
    .in_names = "", .n_in = 0, .n_out = 1,
    .n_args = 4, .args = randn_args,
    .setup = gen_setup, .forward = gen_forward, .backward = no_backward, .destroy = rstate_destroy,
};

/* ---- random_choice ------------------------------------------------------------------ */

static const nl_argdef rc_args[] = {
    {"shape", NL_ARG_INTS, "{}", NULL},
    {"replace", NL_ARG_BOOL, "true", NULL},
    {"seed", NL_ARG_INT, "-1", NULL},
};

/* x, w: (outer, W); y: (outer, inner) with inner = prod(shape) (1 for {}) */
static void rc_dims(nl_func *f, int64_t *outer, int64_t *W, int64_t *inner) {
    const nl_var *x = nl_in(f, 0);
    *W = x->shape[x->ndim - 1];                 /* >= 1 (setup) */
    *outer = x->size / *W;
    *inner = 1;
    for (int j = 0; j < nl_arg_len(f, RC_SHAPE); j++) *inner *= nl_arg_at(f, RC_SHAPE, j);
}

static int rc_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0), *w = nl_in(f, 1);
    char s1[160], s2[160];
    if (!nl_same_shape(x, w))
        return nl_error("inputs 'x' %s and 'w' %s must have the same shape", nl_shape_str(s1, x->ndim, x->shape),
                        nl_shape_str(s2, w->ndim, w->shape));
    if (x->ndim == 0) return nl_error("input 'x' is 0-d; its last axis holds the population");
    const int64_t W = x->shape[x->ndim - 1];
    if (W == 0) return nl_error("input 'x' %s has an empty population (size 0 on its last axis)", nl_shape_str(s1, x->ndim, x->shape));
    int64_t shape[NL_MAX_NDIM], oshape[2 * NL_MAX_NDIM];
    int n = shape_arg(f, RC_SHAPE, shape);
    if (n < 0) return -1;
    if (n == 0) { shape[0] = 1; n = 1; }
    const int ondim = x->ndim - 1 + n;
    if (ondim > NL_MAX_NDIM) return nl_error("the output would have %d axes (at most %d)", ondim, NL_MAX_NDIM);
    for (int d = 0; d < x->ndim - 1; d++) oshape[d] = x->shape[d];
    for (int j = 0; j < n; j++) oshape[x->ndim - 1 + j] = shape[j];
    if (nl_check_out_size("y", ondim, oshape)) return -1;   /* before multiplying the sizes */
    int64_t inner = 1;
    for (int j = 0; j < n; j++) inner *= shape[j];
    if (!nl_arg_bool(f, RC_REPLACE) && inner > W)
        return nl_error("cannot draw %lld samples without replacement from populations of %lld",
                        (long long)inner, (long long)W);
    const int64_t outer = x->size / W;
    if (rstate_new(f, RC_SEED, (size_t)(outer * inner + 1), (size_t)W)) return -1;
    nl_set_out_shape(f, 0, ondim, oshape);
    return 0;
}

static int rc_forward(nl_func *f) {
    int64_t outer, W, inner;
    rc_dims(f, &outer, &W, &inner);
    nl_rstate *st = f->state;
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(const float *, w, nl_in_data(f, 1));
    NL_PTR(float *, y, nl_out_data(f, 0));
    nl_rng *g = nl_stoch_rng(f);
    const bool replace = nl_arg_bool(f, RC_REPLACE);
    double *c = st->dbuf;
    for (int64_t b = 0; b < outer; b++) {
        const float *xb = x + b * W, *wb = w + b * W;
        int64_t *idx = st->ibuf + b * inner;
        const int64_t bad = nl_rc_check(wb, W, inner, replace);
        if (bad >= 0) return nl_rc_fail(wb, W, b, inner, bad);
        if (replace) {                          /* cumulative weights, binary search */
            nl_rc_cumsum(wb, W, c);
            for (int64_t k = 0; k < inner; k++) idx[k] = nl_rc_pick_replace(wb, c, W, nl_rngs_uniform01(g));
        } else {                                /* draw, remove, repeat */
            for (int64_t i = 0; i < W; i++) c[i] = wb[i];
            for (int64_t k = 0; k < inner; k++) idx[k] = nl_rc_pick_without(c, W, nl_rngs_uniform01(g));
        }
        for (int64_t k = 0; k < inner; k++) y[b * inner + k] = xb[idx[k]];
    }
    return 0;
}

/* dx[chosen] += dy, and the same for w (NNabla's rule) */
static int rc_backward(nl_func *f, const bool *prop, const bool *accum) {
    int64_t outer, W, inner;
    rc_dims(f, &outer, &W, &inner);
    nl_rstate *st = f->state;
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    for (int k = 0; k < 2; k++) {
        if (!prop[k]) continue;
        NL_PTR(float *, dx, nl_in_grad(f, k, accum[k]));
        if (!accum[k]) memset(dx, 0, (size_t)nl_in(f, k)->size * sizeof(float));
        for (int64_t b = 0; b < outer; b++)
            for (int64_t j = 0; j < inner; j++) dx[b * W + st->ibuf[b * inner + j]] += dy[b * inner + j];
    }
    return 0;
}

const nl_fdef nl_fdef_random_choice = {
    .name = "random_choice",
    .doc = "draws prod(shape) samples (default {}: one) from each population along x's last axis with "
           "weights w (x's shape), with or without replacement; y: x's leading shape .. shape; "
           "dy flows to the chosen positions of x (and of w, as in NNabla)",
    .in_names = "x,w", .n_in = 2, .n_out = 1,
    .n_args = 3, .args = rc_args,
    .setup = rc_setup, .forward = rc_forward, .backward = rc_backward, .destroy = rstate_destroy,
};

/* ---- random_crop -------------------------------------------------------------------- */

static const nl_argdef crop_args[] = {
    {"shape", NL_ARG_INTS, "nil", NULL},
    {"base_axis", NL_ARG_INT, "2", NULL},
    {"seed", NL_ARG_INT, "-1", NULL},
};

static int crop_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0);
    char s1[160];
    if (x->ndim == 0) return nl_error("input 'x' is 0-d; there is nothing to crop");
    int ba;
    if (nl_norm_axis("base_axis", nl_arg_int(f, CR_BASE_AXIS), x->ndim, &ba)) return -1;
    int64_t y[NL_MAX_NDIM];
    for (int d = 0; d < x->ndim; d++) y[d] = x->shape[d];
    if (nl_arg_given(f, CR_SHAPE)) {
        const int n = nl_arg_len(f, CR_SHAPE);
        if (n > x->ndim - ba)
            return nl_error("argument 'shape' has %d entries but x %s has %d axes from base_axis %d", n,
                            nl_shape_str(s1, x->ndim, x->shape), x->ndim - ba, ba + 1);
        for (int j = 0; j < n; j++) {
            const int d = x->ndim - n + j;
            const int64_t v = nl_arg_at(f, CR_SHAPE, j);
            if (v < 0 || v > x->shape[d])
                return nl_error("argument 'shape' entry %d is %lld; x %s has %lld on axis %d (0..%lld allowed)",
                                j + 1, (long long)v, nl_shape_str(s1, x->ndim, x->shape), (long long)x->shape[d],
                                d + 1, (long long)x->shape[d]);
            y[d] = v;
        }
    }
    nl_remap rm;
    remap_init(&rm, x, ba, y);
    if (rstate_new(f, CR_SEED, (size_t)(rm.S * (rm.T + rm.nd) + 1), 0)) return -1;
    ((nl_rstate *)f->state)->rm = rm;
    ((nl_rstate *)f->state)->kind = NL_REMAP_CROP;
    nl_set_out_shape(f, 0, x->ndim, y);
    return 0;
}

const nl_fdef nl_fdef_random_crop = {
    .name = "random_crop",
    .doc = "a random window of size `shape` (default x's shape) over x's last #shape axes, drawn per "
           "sample (the axes before base_axis, default 2); dy flows back into the window",
    .in_names = "x", .n_in = 1, .n_out = 1,
    .n_args = 3, .args = crop_args,
    .setup = crop_setup, .forward = remap_forward, .backward = remap_backward, .destroy = rstate_destroy,
};

/* ---- random_flip -------------------------------------------------------------------- */

static const nl_argdef flip_args[] = {
    {"axes", NL_ARG_AXES, "nil", NULL},
    {"base_axis", NL_ARG_INT, "2", NULL},
    {"seed", NL_ARG_INT, "-1", NULL},
};

static int flip_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0);
    if (x->ndim == 0) return nl_error("input 'x' is 0-d; there is nothing to flip");
    int ba;
    if (nl_norm_axis("base_axis", nl_arg_int(f, FL_BASE_AXIS), x->ndim, &ba)) return -1;
    bool which[NL_MAX_NDIM];
    if (nl_flip_axes(f, ba, which)) return -1;
    nl_remap rm;
    remap_init(&rm, x, ba, x->shape);
    if (rstate_new(f, FL_SEED, (size_t)(rm.S * (rm.T + rm.nd) + 1), 0)) return -1;
    ((nl_rstate *)f->state)->rm = rm;
    ((nl_rstate *)f->state)->kind = NL_REMAP_FLIP;
    nl_set_out_shape(f, 0, x->ndim, x->shape);
    return 0;
}

const nl_fdef nl_fdef_random_flip = {
    .name = "random_flip",
    .doc = "reverses each of `axes` (default {-1}) with probability 1/2, drawn per sample (the axes "
           "before base_axis, default 2); dy flows back through the same flips",
    .in_names = "x", .n_in = 1, .n_out = 1,
    .n_args = 3, .args = flip_args,
    .setup = flip_setup, .forward = remap_forward, .backward = remap_backward, .destroy = rstate_destroy,
};

/* ---- random_shift ------------------------------------------------------------------- */

static const nl_argdef shift_args[] = {
    {"shifts", NL_ARG_INTS, "nil", NULL},
    {"border_mode", NL_ARG_CHOICE, "'nearest'", "nearest|reflect|constant"},
    {"constant_value", NL_ARG_FLOAT, "0", NULL},
    {"base_axis", NL_ARG_INT, "2", NULL},
    {"seed", NL_ARG_INT, "-1", NULL},
};

static int shift_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0);
    char s1[160];
    if (x->ndim == 0) return nl_error("input 'x' is 0-d; there is nothing to shift");
    int ba;
    if (nl_norm_axis("base_axis", nl_arg_int(f, SH_BASE_AXIS), x->ndim, &ba)) return -1;
    if (nl_arg_given(f, SH_SHIFTS)) {
        const int n = nl_arg_len(f, SH_SHIFTS);
        if (n > x->ndim)
            return nl_error("argument 'shifts' has %d entries but x %s has %d axes", n,
                            nl_shape_str(s1, x->ndim, x->shape), x->ndim);
        for (int j = 0; j < n; j++) {
            const int d = x->ndim - n + j;
            const int64_t v = nl_arg_at(f, SH_SHIFTS, j);
            if (v < 0) return nl_error("argument 'shifts' entry %d is %lld (shifts are >= 0)", j + 1, (long long)v);
            if (v > 0 && d < ba)
                return nl_error("argument 'shifts' entry %d shifts axis %d, a sample axis (before base_axis %d)",
                                j + 1, d + 1, ba + 1);
        }
    }
    nl_remap rm;
    remap_init(&rm, x, ba, x->shape);
    if (rstate_new(f, SH_SEED, (size_t)(rm.S * (rm.T + rm.nd) + 1), 0)) return -1;
    ((nl_rstate *)f->state)->rm = rm;
    ((nl_rstate *)f->state)->kind = NL_REMAP_SHIFT;
    nl_set_out_shape(f, 0, x->ndim, x->shape);
    return 0;
}

const nl_fdef nl_fdef_random_shift = {
    .name = "random_shift",
    .doc = "shifts x's last #shifts axes by amounts drawn from -shift..shift, per sample (the axes "
           "before base_axis, default 2): y[i] = x[i - s], borders 'nearest' (default), 'reflect' or "
           "'constant' (constant_value); dy flows back to the source positions",
    .in_names = "x", .n_in = 1, .n_out = 1,
    .n_args = 5, .args = shift_args,
    .setup = shift_setup, .forward = remap_forward, .backward = remap_backward, .destroy = rstate_destroy,
};

/* ---- random_erase ------------------------------------------------------------------- */

static const nl_argdef erase_args[] = {
    {"prob", NL_ARG_FLOAT, "0.5", NULL},
    {"area_ratios", NL_ARG_FLOATS, "{0.02, 0.4}", NULL},
    {"aspect_ratios", NL_ARG_FLOATS, "{0.3, 3.3333}", NULL},
    {"replacements", NL_ARG_FLOATS, "{0, 255}", NULL},
    {"n", NL_ARG_INT, "1", NULL},
    {"share", NL_ARG_BOOL, "true", NULL},
    {"inplace", NL_ARG_BOOL, "false", NULL},
    {"base_axis", NL_ARG_INT, "2", NULL},
    {"seed", NL_ARG_INT, "-1", NULL},
    {"channel_last", NL_ARG_BOOL, "false", NULL},
    {"ste_fine_grained", NL_ARG_BOOL, "true", NULL},
};

static int range_arg(nl_func *f, int k, const char *name, double min_lo, double *lo, double *hi) {
    if (nl_arg_len(f, k) != 2) return nl_error("argument '%s' must be a list of 2 numbers {low, high}", name);
    *lo = f->args[k].v[0];
    *hi = f->args[k].v[1];
    if (!isfinite(*lo) || !isfinite(*hi) || *lo > *hi || *lo < min_lo)
        return nl_error("argument '%s' {%g, %g} must hold finite low <= high%s", name, *lo, *hi,
                        min_lo > -INFINITY ? (min_lo > 0 ? " (both > 0)" : " (both >= 0)") : "");
    return 0;
}

static int erase_setup(nl_func *f) {
    const double prob = nl_arg_float(f, RE_PROB);
    double lo, hi;
    if (!(prob >= 0 && prob <= 1)) return nl_error("argument 'prob' must be in [0, 1], got %g", prob);
    if (range_arg(f, RE_AREA, "area_ratios", 0, &lo, &hi)) return -1;
    if (range_arg(f, RE_ASPECT, "aspect_ratios", 1e-30, &lo, &hi)) return -1;
    if (range_arg(f, RE_REPL, "replacements", -INFINITY, &lo, &hi)) return -1;
    if (nl_arg_int(f, RE_N) < 1) return nl_error("argument 'n' must be >= 1, got %lld", (long long)nl_arg_int(f, RE_N));
    nl_erase_dims e;
    if (nl_erase_dims_of(f, &e)) return -1;
    if (rstate_new(f, RE_SEED, 0, 0)) return -1;
    const nl_var *x = nl_in(f, 0);
    nl_set_out_shape(f, 0, x->ndim, x->shape);
    return 0;
}

/* x, y: (B, C, H, W) or (B, H, W, C); scratch 0 keeps the mask (1 kept, 0 erased) */
static int erase_forward(nl_func *f) {
    nl_erase_dims e;
    if (nl_erase_dims_of(f, &e)) return -1;
    const int64_t size = nl_in(f, 0)->size, block = e.C * e.H * e.W;
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(float *, y, nl_out_data(f, 0));
    NL_PTR(float *, mask, nl_func_scratch(f, 0, size + 1));
    memcpy(y, x, (size_t)size * sizeof(float));
    for (int64_t i = 0; i < size; i++) mask[i] = 1.0f;
    nl_rng *g = nl_stoch_rng(f);
    nl_erase_walk w;
    nl_erase_walk_init(&w, f, &e);
    while (nl_erase_walk_next(&w, g)) {
        if (!w.on) continue;
        float *yc = y + w.b * block + w.c * e.sc;
        float *mc = mask + w.b * block + w.c * e.sc;
        for (int64_t h = w.ys; h < w.ys + w.he; h++)
            for (int64_t q = w.xs; q < w.xs + w.we; q++) {
                yc[h * e.sh + q * e.sw] = nl_erase_value(&w, g);
                mc[h * e.sh + q * e.sw] = 0.0f;
            }
    }
    return 0;
}

/* dx = dy * mask (ste_fine_grained) or dy */
static int erase_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    const int64_t n = nl_in(f, 0)->size;
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    NL_PTR(float *, dx, nl_in_grad(f, 0, accum[0]));
    if (nl_arg_bool(f, RE_STE)) {
        NL_PTR(const float *, m, nl_func_scratch(f, 0, n + 1));
        if (accum[0]) for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * m[i];
        else for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * m[i];
    } else {
        if (accum[0]) for (int64_t i = 0; i < n; i++) dx[i] += dy[i];
        else memcpy(dx, dy, (size_t)n * sizeof(float));
    }
    return 0;
}

const nl_fdef nl_fdef_random_erase = {
    .name = "random_erase",
    .doc = "x (samples..., C, H, W), or (samples..., H, W, C) with channel_last: per sample and each of "
           "n tries, with probability prob a random patch (area ratio ~ area_ratios, aspect ~ "
           "aspect_ratios; one per sample when share, else per channel) is filled with values ~ "
           "U(replacements); dy flows outside the erased pixels (everywhere when ste_fine_grained is "
           "false); inplace is accepted, the output is always a new array",
    .in_names = "x", .n_in = 1, .n_out = 1,
    .n_args = 11, .args = erase_args,
    .setup = erase_setup, .forward = erase_forward, .backward = erase_backward, .destroy = rstate_destroy,
};
