/*
 * normalization_ext.c - the catalogue's normalization functions beyond batch_normalization,
 * with NNabla's semantics (src/nbla/function/generic/<name>.cpp). Axes are Lua-style
 * (1-based, negative from the end); NNabla's defaults batch_axis=(0,), channel_axis=1,
 * axes=(1,), dim=0 become {1}, 2, {2}, 1.
 *
 *   layer_normalization(x, [beta], [gamma], batch_axis={1}, eps=1e-5, no_scale=false, no_bias=false)
 *     statistics per index of the batch axes over all other axes; beta/gamma have x's shape
 *     with 1 on the batch axes (e.g. {1, C, H, W}).
 *   instance_normalization(x, [beta], [gamma], channel_axis=2, batch_axis={1}, eps=1e-5,
 *                          no_scale=false, no_bias=false)
 *     statistics per (batch, channel) over the other axes; beta/gamma have x's rank, the
 *     channel size on channel_axis, and on every other axis 1 or (batch axes) x's size.
 *   group_normalization(x, [beta], [gamma], num_groups=1, channel_axis=2, batch_axis={1},
 *                       eps=1e-5, no_scale=false, no_bias=false)
 *     channels split into num_groups consecutive groups; statistics per (batch, group);
 *     beta/gamma have shape {1, C, 1, ...} (C at channel_axis).
 *   In all three: y = (x - mean) / sqrt(var + eps) * gamma + beta with the biased variance;
 *   an absent beta/gamma (or no_bias/no_scale = true, which then forbids giving it) omits
 *   the term.
 *
 *   fused_batch_normalization(x, beta, gamma, mean, variance, [z], axes={2}, decay_rate=0.9,
 *                             eps=1e-5, batch_stat=true, nonlinearity='relu')
 *     y = relu(batch_normalization(x, beta, gamma, mean, variance, axes, ...) + z); the
 *     batch-norm part is batch_normalization's exactly (running statistics updated in place
 *     when batch_stat = true, unbiased variance; gradients for mean/variance only when
 *     batch_stat = false). axes (the kept axes) need not be adjacent here.
 *
 *   weight_normalization(w, g, dim=1, eps=1e-12)
 *     w_wn = g[j] * w / sqrt(sum w^2 + eps), the sum over every axis but dim; g: (w.shape[dim]).
 *
 *   clip_grad_by_value(x, min, max)
 *     identity forward; backward dx = min(max(dy, min), max) element-wise; min and max are
 *     inputs of x's shape and get no gradient (zeros when asked for).
 *   clip_grad_by_norm(x, clip_norm=1.0, axes=nil)
 *     identity forward; backward dx = clip_norm * dy / sqrt(sum over axes of dy^2) (all axes
 *     when axes is nil or {}), rescaling whatever the norm (NNabla); a zero norm gives dx = 0.
 *
 * The three normalizations and the fused batch norm share one kernel ("tensor norm"): x
 * is walked as rows of a merged, strided view in which every element finds its statistic
 * and its beta/gamma entries through strides (0 on reduced or broadcast axes).
 */
#include "../src/function.h"
#include "norm_ext_plan.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { MAXD = NL_TN_MAXD };   /* group norm splits the channel axis in two */

static void free_state(nl_func *f) { free(f->state); }

/* ---------------------------------- tensor norm ---------------------------------- */

/* tn_map, tn_row and the per-element math: norm_ext_plan.h (shared with cuda/norm_ext.cu) */

/* shp[k]: per axis 1 (reduced/broadcast) or x's size; NULL = all 1 (absent). */
static void tn_build(tn_map *m, int nd, const int64_t *xs, const int64_t *const shp[M_N]) {
    int64_t st[M_N][MAXD];
    m->size = 1;
    for (int d = 0; d < nd; d++) m->size *= xs[d];
    for (int k = 0; k < M_N; k++) {
        int64_t s = 1;
        for (int d = nd - 1; d >= 0; d--) {
            const int64_t n = shp[k] ? shp[k][d] : 1;
            st[k][d] = (n == 1) ? 0 : s;
            s *= n;
        }
    }
    m->nstat = 1;
    if (shp[M_STAT]) for (int d = 0; d < nd; d++) m->nstat *= shp[M_STAT][d];
    m->count = m->nstat > 0 ? m->size / m->nstat : 0;
    /* drop size-1 axes, merge axes whose strides are contiguous in every map */
    int n = 0;
    for (int d = 0; d < nd; d++) {
        if (xs[d] == 1) continue;
        m->shape[n] = xs[d];
        for (int k = 0; k < M_N; k++) m->st[k][n] = st[k][d];
        if (n > 0) {
            bool merge = true;
            for (int k = 0; k < M_N; k++) merge = merge && m->st[k][n - 1] == m->st[k][n] * m->shape[n];
            if (merge) {
                m->shape[n - 1] *= m->shape[n];
                for (int k = 0; k < M_N; k++) m->st[k][n - 1] = m->st[k][n];
                continue;
            }
        }
        n++;
    }
    if (n == 0) {
        n = 1;
        m->shape[0] = 1;
        for (int k = 0; k < M_N; k++) m->st[k][0] = 0;
    }
    m->nd = n;
    m->inner = m->shape[n - 1];
    m->rows = m->inner > 0 ? m->size / m->inner : 0;
}

/* Batch statistics: mean[s] and rstd[s] = 1/sqrt(var[s] + eps) (biased var in *var_out
 * when given). acc: 2 * nstat doubles of work space. */
static void tn_stats(const tn_map *m, const float *x, double eps, double *acc, float *mean,
                     float *rstd, double *var_out) {
    const int64_t ns = m->nstat, inner = m->inner, si = m->st[M_STAT][m->nd - 1];
    double *sum = acc, *sq = acc + ns;
    for (int64_t s = 0; s < 2 * ns; s++) acc[s] = 0;
    int64_t off[M_N];
    for (int64_t r = 0; r < m->rows; r++) {
        tn_row(m, r, off);
        const float *xr = x + r * inner;
        if (si == 0) {
            double a = 0;
            for (int64_t i = 0; i < inner; i++) a += xr[i];
            sum[off[0]] += a;
        } else {
            for (int64_t i = 0; i < inner; i++) sum[off[0] + i * si] += xr[i];
        }
    }
    const double cnt = m->count > 0 ? (double)m->count : 1.0;
    for (int64_t s = 0; s < ns; s++) sum[s] /= cnt;
    for (int64_t r = 0; r < m->rows; r++) {
        tn_row(m, r, off);
        const float *xr = x + r * inner;
        if (si == 0) {
            const double mu = sum[off[0]];
            double a = 0;
            for (int64_t i = 0; i < inner; i++) { const double d = xr[i] - mu; a += d * d; }
            sq[off[0]] += a;
        } else {
            for (int64_t i = 0; i < inner; i++) {
                const double d = xr[i] - sum[off[0] + i * si];
                sq[off[0] + i * si] += d * d;
            }
        }
    }
    for (int64_t s = 0; s < ns; s++) {
        const double v = sq[s] / cnt;
        mean[s] = (float)sum[s];
        rstd[s] = nl_tn_rstd(v, eps);
        if (var_out) var_out[s] = v;
    }
}

typedef struct tn_ctx {
    const tn_map *m;
    const float *x, *z, *mean, *rstd, *beta, *gamma, *dy, *y;
    const double *a, *b;     /* backward: per statistic sum(dy*g), sum(dy*g*xhat) */
    float *out;
    bool relu, accum, batch;
} tn_ctx;

/* y = (x - mean) * rstd * gamma + beta (+ z, relu) over rows [r0, r1) */
static void tn_fwd_range(int64_t r0, int64_t r1, void *vctx) {
    const tn_ctx *c = vctx;
    const tn_map *m = c->m;
    const int64_t inner = m->inner, si = m->st[M_STAT][m->nd - 1], bi = m->st[M_BETA][m->nd - 1],
                  gi = m->st[M_GAMMA][m->nd - 1];
    int64_t off[M_N];
    for (int64_t r = r0; r < r1; r++) {
        tn_row(m, r, off);
        const float *xr = c->x + r * inner;
        float *yr = c->out + r * inner;
        for (int64_t i = 0; i < inner; i++) {
            const int64_t s = off[0] + i * si;
            float v = nl_tn_affine(xr[i], c->mean[s], c->rstd[s], c->gamma != NULL,
                                   c->gamma ? c->gamma[off[2] + i * gi] : 1.0f, c->beta != NULL,
                                   c->beta ? c->beta[off[1] + i * bi] : 0.0f);
            if (c->relu) v = nl_fbn_act(v, c->z != NULL, c->z ? c->z[r * inner + i] : 0.0f);
            yr[i] = v;
        }
    }
}

static void tn_forward(const tn_map *m, tn_ctx *c) {
    nl_parallel_for(m->rows, m->inner * 4, tn_fwd_range, c);
}

/* dx over rows [r0, r1): batch statistics: rstd * (dy*g - a/n - xhat * b/n); given
 * statistics: rstd * dy*g */
static void tn_dx_range(int64_t r0, int64_t r1, void *vctx) {
    const tn_ctx *c = vctx;
    const tn_map *m = c->m;
    const int64_t inner = m->inner, si = m->st[M_STAT][m->nd - 1], gi = m->st[M_GAMMA][m->nd - 1];
    const double inv_n = m->count > 0 ? 1.0 / (double)m->count : 0.0;
    int64_t off[M_N];
    for (int64_t r = r0; r < r1; r++) {
        tn_row(m, r, off);
        const float *xr = c->x + r * inner, *dyr = c->dy + r * inner;
        float *dx = c->out + r * inner;
        for (int64_t i = 0; i < inner; i++) {
            const int64_t s = off[0] + i * si;
            const float g = c->gamma ? c->gamma[off[2] + i * gi] : 1.0f;
            float v;
            if (c->batch) {
                v = nl_tn_dx(xr[i], c->mean[s], c->rstd[s], dyr[i], g, c->a[s], c->b[s], inv_n);
            } else {
                v = nl_tn_dx_given(c->rstd[s], dyr[i], g);
            }
            dx[i] = c->accum ? dx[i] + v : v;
        }
    }
}

/* Backward sums: a[s] = sum dy*g, b[s] = sum dy*g*xhat per statistic; dbeta/dgamma
 * (NULL = not wanted) accumulate sum dy and sum dy*xhat per parameter entry (they must
 * be zeroed or hold the old gradient). */
static void tn_sums(const tn_map *m, const tn_ctx *c, double *a, double *b, double *dbeta,
                    double *dgamma) {
    const int64_t inner = m->inner, si = m->st[M_STAT][m->nd - 1], bi = m->st[M_BETA][m->nd - 1],
                  gi = m->st[M_GAMMA][m->nd - 1];
    for (int64_t s = 0; s < m->nstat; s++) a[s] = b[s] = 0;
    int64_t off[M_N];
    for (int64_t r = 0; r < m->rows; r++) {
        tn_row(m, r, off);
        const float *xr = c->x + r * inner, *dyr = c->dy + r * inner;
        for (int64_t i = 0; i < inner; i++) {
            const int64_t s = off[0] + i * si;
            const float xh = nl_tn_xhat(xr[i], c->mean[s], c->rstd[s]);
            const double d = dyr[i], g = c->gamma ? c->gamma[off[2] + i * gi] : 1.0f;
            a[s] += d * g;
            b[s] += d * g * xh;
            if (dbeta) dbeta[off[1] + i * bi] += d;
            if (dgamma) dgamma[off[2] + i * gi] += d * xh;
        }
    }
}

/* Writes or adds a double vector into input i's gradient. */
static int put_grad(nl_func *f, int i, bool accum, const double *v, int64_t n) {
    NL_PTR(float *, g, nl_in_grad(f, i, accum));
    for (int64_t k = 0; k < n; k++) g[k] = accum ? g[k] + (float)v[k] : (float)v[k];
    return 0;
}

/* Zeros input i's gradient unless accumulating (inputs that get no gradient). */
static int zero_grad(nl_func *f, int i, bool accum) {
    if (accum) return 0;
    NL_PTR(float *, g, nl_in_grad(f, i, false));
    memset(g, 0, (size_t)nl_in(f, i)->size * sizeof(float));
    return 0;
}

/* Parses a list of axes (Lua 1-based) into flags; fails on duplicates. */
static int axes_flags(nl_func *f, int k, const char *name, int nd, bool *flags) {
    for (int d = 0; d < nd; d++) flags[d] = false;
    for (int j = 0; j < nl_arg_len(f, k); j++) {
        int a;
        if (nl_norm_axis(name, nl_arg_at(f, k, j), nd, &a)) return -1;
        if (flags[a]) return nl_error("argument '%s' names axis %d twice", name, a + 1);
        flags[a] = true;
    }
    return 0;
}

/* ------------------------- layer / instance / group norm ------------------------- */

/* the inputs' positions (IN_X, IN_BETA, IN_GAMMA) and norm_state: norm_ext_plan.h */

/* Optional beta/gamma with the no_bias/no_scale flags. */
static int affine_inputs(nl_func *f, int a_no_scale, int a_no_bias, bool *hb, bool *hg) {
    *hb = f->in[IN_BETA] != NULL;
    *hg = f->in[IN_GAMMA] != NULL;
    if (*hb && nl_arg_bool(f, a_no_bias)) return nl_error("input 'beta' is given but no_bias = true");
    if (*hg && nl_arg_bool(f, a_no_scale)) return nl_error("input 'gamma' is given but no_scale = true");
    return 0;
}

/* Checks that input i has exactly shape want (nd axes). */
static int check_param(nl_func *f, int i, const char *name, int nd, const int64_t *want, const char *what) {
    const nl_var *v = f->in[i], *x = nl_in(f, 0);
    bool ok = v->ndim == nd;
    for (int d = 0; ok && d < nd; d++) ok = v->shape[d] == want[d];
    if (ok) return 0;
    char s1[160], s2[160], s3[160];
    return nl_error("input '%s' has shape %s, expected %s (%s; x %s)", name,
                    nl_shape_str(s1, v->ndim, v->shape), nl_shape_str(s2, nd, want), what,
                    nl_shape_str(s3, x->ndim, x->shape));
}

static int norm_finish(nl_func *f, int nd, const int64_t *xs, const int64_t *stat,
                       const int64_t *pb, const int64_t *pg, bool hb, bool hg, double eps) {
    norm_state *s = calloc(1, sizeof *s);
    if (!s) return nl_error("out of memory");
    const int64_t *shp[M_N] = {stat, hb ? pb : NULL, hg ? pg : NULL};
    tn_build(&s->m, nd, xs, shp);
    s->has_beta = hb;
    s->has_gamma = hg;
    s->eps = eps;
    f->state = s;
    const nl_var *x = nl_in(f, 0);
    nl_set_out_shape(f, 0, x->ndim, x->shape);
    return 0;
}

enum { LN_BATCH_AXIS, LN_EPS, LN_NO_SCALE, LN_NO_BIAS };
static const nl_argdef ln_args[] = {
    {"batch_axis", NL_ARG_AXES, "{1}", NULL},
    {"eps", NL_ARG_FLOAT, "1e-5", NULL},
    {"no_scale", NL_ARG_BOOL, "false", NULL},
    {"no_bias", NL_ARG_BOOL, "false", NULL},
};

static int ln_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0);
    const int nd = x->ndim;
    bool batch[NL_MAX_NDIM], hb, hg;
    if (axes_flags(f, LN_BATCH_AXIS, "batch_axis", nd, batch)) return -1;
    if (affine_inputs(f, LN_NO_SCALE, LN_NO_BIAS, &hb, &hg)) return -1;
    int64_t stat[NL_MAX_NDIM], par[NL_MAX_NDIM];
    for (int d = 0; d < nd; d++) {
        stat[d] = batch[d] ? x->shape[d] : 1;
        par[d] = batch[d] ? 1 : x->shape[d];
    }
    const char *what = "x's shape with 1 on the batch axes";
    if (hb && check_param(f, IN_BETA, "beta", nd, par, what)) return -1;
    if (hg && check_param(f, IN_GAMMA, "gamma", nd, par, what)) return -1;
    return norm_finish(f, nd, x->shape, stat, par, par, hb, hg, nl_arg_float(f, LN_EPS));
}

enum { IN_CHANNEL_AXIS, IN_BATCH_AXIS, IN_EPS, IN_NO_SCALE, IN_NO_BIAS };
static const nl_argdef in_args[] = {
    {"channel_axis", NL_ARG_AXIS, "2", NULL},
    {"batch_axis", NL_ARG_AXES, "{1}", NULL},
    {"eps", NL_ARG_FLOAT, "1e-5", NULL},
    {"no_scale", NL_ARG_BOOL, "false", NULL},
    {"no_bias", NL_ARG_BOOL, "false", NULL},
};

/* instance norm's beta/gamma: x's rank, C on the channel axis, 1 or adapt[d] elsewhere */
static int in_param(nl_func *f, int i, const char *name, int ca, const int64_t *adapt) {
    const nl_var *v = f->in[i], *x = nl_in(f, 0);
    bool ok = v->ndim == x->ndim && v->shape[ca] == x->shape[ca];
    for (int d = 0; ok && d < x->ndim; d++) ok = v->shape[d] == 1 || v->shape[d] == adapt[d];
    if (ok) return 0;
    char s1[160], s2[160], s3[160];
    return nl_error("input '%s' has shape %s, expected %s or that shape with 1 on the batch axes "
                    "(channel size %lld on channel_axis %d; x %s)", name,
                    nl_shape_str(s1, v->ndim, v->shape), nl_shape_str(s2, x->ndim, adapt),
                    (long long)x->shape[ca], ca + 1, nl_shape_str(s3, x->ndim, x->shape));
}

static int in_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0);
    const int nd = x->ndim;
    bool batch[NL_MAX_NDIM], hb, hg;
    int ca;
    if (nl_norm_axis("channel_axis", nl_arg_int(f, IN_CHANNEL_AXIS), nd, &ca)) return -1;
    if (axes_flags(f, IN_BATCH_AXIS, "batch_axis", nd, batch)) return -1;
    if (batch[ca]) return nl_error("channel_axis %d is also a batch axis", ca + 1);
    if (affine_inputs(f, IN_NO_SCALE, IN_NO_BIAS, &hb, &hg)) return -1;
    int64_t stat[NL_MAX_NDIM];
    for (int d = 0; d < nd; d++) stat[d] = (batch[d] || d == ca) ? x->shape[d] : 1;
    if (hb && in_param(f, IN_BETA, "beta", ca, stat)) return -1;
    if (hg && in_param(f, IN_GAMMA, "gamma", ca, stat)) return -1;
    return norm_finish(f, nd, x->shape, stat, hb ? f->in[IN_BETA]->shape : NULL,
                       hg ? f->in[IN_GAMMA]->shape : NULL, hb, hg, nl_arg_float(f, IN_EPS));
}

enum { GN_NUM_GROUPS, GN_CHANNEL_AXIS, GN_BATCH_AXIS, GN_EPS, GN_NO_SCALE, GN_NO_BIAS };
static const nl_argdef gn_args[] = {
    {"num_groups", NL_ARG_INT, "1", NULL},
    {"channel_axis", NL_ARG_AXIS, "2", NULL},
    {"batch_axis", NL_ARG_AXES, "{1}", NULL},
    {"eps", NL_ARG_FLOAT, "1e-5", NULL},
    {"no_scale", NL_ARG_BOOL, "false", NULL},
    {"no_bias", NL_ARG_BOOL, "false", NULL},
};

static int gn_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0);
    const int nd = x->ndim;
    bool batch[NL_MAX_NDIM], hb, hg;
    int ca;
    char xs[160];
    nl_shape_str(xs, nd, x->shape);
    if (nl_norm_axis("channel_axis", nl_arg_int(f, GN_CHANNEL_AXIS), nd, &ca)) return -1;
    if (axes_flags(f, GN_BATCH_AXIS, "batch_axis", nd, batch)) return -1;
    if (batch[ca]) return nl_error("channel_axis %d is also a batch axis", ca + 1);
    if (affine_inputs(f, GN_NO_SCALE, GN_NO_BIAS, &hb, &hg)) return -1;
    const int64_t groups = nl_arg_int(f, GN_NUM_GROUPS), c = x->shape[ca];
    if (groups < 1) return nl_error("num_groups must be 1 or more, got %lld", (long long)groups);
    if (c % groups)
        return nl_error("x %s has %lld channels (channel_axis %d), not a multiple of num_groups %lld",
                        xs, (long long)c, ca + 1, (long long)groups);
    int64_t par[NL_MAX_NDIM];
    for (int d = 0; d < nd; d++) par[d] = d == ca ? c : 1;
    const char *what = "1 everywhere but the channel size on channel_axis";
    if (hb && check_param(f, IN_BETA, "beta", nd, par, what)) return -1;
    if (hg && check_param(f, IN_GAMMA, "gamma", nd, par, what)) return -1;
    /* x viewed as (..., G, C/G, ...) */
    int64_t xe[MAXD], stat[MAXD], pe[MAXD];
    int e = 0;
    for (int d = 0; d < nd; d++) {
        if (d == ca) {
            xe[e] = groups; stat[e] = groups; pe[e] = groups; e++;
            xe[e] = c / groups; stat[e] = 1; pe[e] = c / groups; e++;
        } else {
            xe[e] = x->shape[d]; stat[e] = batch[d] ? x->shape[d] : 1; pe[e] = 1; e++;
        }
    }
    return norm_finish(f, e, xe, stat, pe, pe, hb, hg, nl_arg_float(f, GN_EPS));
}

/* x -> y; scratch 0: mean and rstd (2 * nstat); scratch 1: doubles (2 * nstat) */
static int norm_forward(nl_func *f) {
    const norm_state *s = f->state;
    const tn_map *m = &s->m;
    const double eps = s->eps;
    tn_ctx c = {.m = m};
    if (!(c.x = nl_in_data(f, IN_X)) || !(c.out = nl_out_data(f, 0))) return -1;
    if (s->has_beta && !(c.beta = nl_in_data(f, IN_BETA))) return -1;
    if (s->has_gamma && !(c.gamma = nl_in_data(f, IN_GAMMA))) return -1;
    NL_PTR(float *, ms, nl_func_scratch(f, 0, 2 * m->nstat + 1));
    NL_PTR(float *, acc, nl_func_scratch(f, 1, 4 * m->nstat + 2));
    tn_stats(m, c.x, eps, (double *)(void *)acc, ms, ms + m->nstat, NULL);
    c.mean = ms;
    c.rstd = ms + m->nstat;
    tn_forward(m, &c);
    return 0;
}

/* dy -> dx, dbeta, dgamma; scratch 2: doubles (2 * nstat + beta + gamma sizes) */
static int norm_backward(nl_func *f, const bool *prop, const bool *accum) {
    const norm_state *s = f->state;
    const tn_map *m = &s->m;
    const bool pb = s->has_beta && prop[IN_BETA], pg = s->has_gamma && prop[IN_GAMMA];
    if (!prop[IN_X] && !pb && !pg) return 0;
    tn_ctx c = {.m = m, .batch = true};
    if (!(c.x = nl_in_data(f, IN_X)) || !(c.dy = nl_out_grad(f, 0))) return -1;
    if (s->has_gamma && !(c.gamma = nl_in_data(f, IN_GAMMA))) return -1;
    if (!f->scratch[0]) return nl_error("forward must run before backward");
    c.mean = f->scratch[0];
    c.rstd = f->scratch[0] + m->nstat;
    const int64_t nb = pb ? nl_in(f, IN_BETA)->size : 0, ng = pg ? nl_in(f, IN_GAMMA)->size : 0;
    NL_PTR(float *, wsf, nl_func_scratch(f, 2, 2 * (2 * m->nstat + nb + ng) + 2));
    double *a = (double *)(void *)wsf, *b = a + m->nstat, *db = b + m->nstat, *dg = db + nb;
    for (int64_t k = 0; k < nb + ng; k++) db[k] = 0;
    tn_sums(m, &c, a, b, pb ? db : NULL, pg ? dg : NULL);
    if (pb && put_grad(f, IN_BETA, accum[IN_BETA], db, nb)) return -1;
    if (pg && put_grad(f, IN_GAMMA, accum[IN_GAMMA], dg, ng)) return -1;
    if (prop[IN_X]) {
        c.a = a; c.b = b; c.accum = accum[IN_X];
        if (!(c.out = nl_in_grad(f, IN_X, accum[IN_X]))) return -1;
        nl_parallel_for(m->rows, m->inner * 4, tn_dx_range, &c);
    }
    return 0;
}

const nl_fdef nl_fdef_layer_normalization = {
    .name = "layer_normalization",
    .doc = "y = (x - mean) / sqrt(var + eps) * gamma + beta with statistics per index of the batch "
           "axes (default {1}) over all other axes; beta/gamma: x's shape with 1 on the batch axes",
    .in_names = "x,beta,gamma", .n_in = 1, .n_opt_in = 2, .n_out = 1,
    .n_args = 4, .args = ln_args,
    .setup = ln_setup, .forward = norm_forward, .backward = norm_backward, .destroy = free_state,
    .grad_in_data = (1u << IN_X) | (1u << IN_GAMMA), .grad_out_data = 0,
};

const nl_fdef nl_fdef_instance_normalization = {
    .name = "instance_normalization",
    .doc = "y = (x - mean) / sqrt(var + eps) * gamma + beta with statistics per (batch, channel) "
           "over the other axes; beta/gamma: {1, C, 1, ...} (or with the batch sizes)",
    .in_names = "x,beta,gamma", .n_in = 1, .n_opt_in = 2, .n_out = 1,
    .n_args = 5, .args = in_args,
    .setup = in_setup, .forward = norm_forward, .backward = norm_backward, .destroy = free_state,
    .grad_in_data = (1u << IN_X) | (1u << IN_GAMMA), .grad_out_data = 0,
};

const nl_fdef nl_fdef_group_normalization = {
    .name = "group_normalization",
    .doc = "y = (x - mean) / sqrt(var + eps) * gamma + beta with statistics per (batch, group of "
           "C/num_groups consecutive channels); beta/gamma: {1, C, 1, ...}",
    .in_names = "x,beta,gamma", .n_in = 1, .n_opt_in = 2, .n_out = 1,
    .n_args = 6, .args = gn_args,
    .setup = gn_setup, .forward = norm_forward, .backward = norm_backward, .destroy = free_state,
    .grad_in_data = (1u << IN_X) | (1u << IN_GAMMA), .grad_out_data = 0,
};

/* --------------------------- fused batch normalization --------------------------- */

/* FB_* (the inputs' and arguments' positions) and the per-element math: norm_ext_plan.h
 * (shared with cuda/fused_bn.cu) */
static const nl_argdef fbn_args[] = {
    {"axes", NL_ARG_AXES, "{2}", NULL},
    {"decay_rate", NL_ARG_FLOAT, "0.9", NULL},
    {"eps", NL_ARG_FLOAT, "1e-5", NULL},
    {"batch_stat", NL_ARG_BOOL, "true", NULL},
    {"nonlinearity", NL_ARG_CHOICE, "'relu'", "relu"},
};
static const char *const fbn_names[] = {"x", "beta", "gamma", "mean", "variance", "z"};

static int fbn_setup(nl_func *f) {
    const nl_var *x = nl_in(f, FB_X);
    const int nd = x->ndim;
    bool kept[NL_MAX_NDIM];
    if (axes_flags(f, FB_AXES, "axes", nd, kept)) return -1;
    int64_t stat[NL_MAX_NDIM];
    for (int d = 0; d < nd; d++) stat[d] = kept[d] ? x->shape[d] : 1;
    for (int i = FB_BETA; i <= FB_VAR; i++)
        if (check_param(f, i, fbn_names[i], nd, stat, "x's shape with 1 on every reduced axis")) return -1;
    if (f->in[FB_Z] && !nl_same_shape(f->in[FB_Z], x)) {
        char s1[160], s2[160];
        return nl_error("input 'z' has shape %s but x has shape %s (they are added)",
                        nl_shape_str(s1, f->in[FB_Z]->ndim, f->in[FB_Z]->shape),
                        nl_shape_str(s2, nd, x->shape));
    }
    return norm_finish(f, nd, x->shape, stat, stat, stat, true, true, nl_arg_float(f, FB_EPS));
}

/* scratch 0: mean, rstd (2 * nstat); scratch 1: doubles */
static int fbn_forward(nl_func *f) {
    const norm_state *s = f->state;
    const tn_map *m = &s->m;
    const int64_t ns = m->nstat;
    const double eps = nl_arg_float(f, FB_EPS), decay = nl_arg_float(f, FB_DECAY);
    tn_ctx c = {.m = m, .relu = true};
    if (!(c.x = nl_in_data(f, FB_X)) || !(c.out = nl_out_data(f, 0))) return -1;
    if (!(c.beta = nl_in_data(f, FB_BETA)) || !(c.gamma = nl_in_data(f, FB_GAMMA))) return -1;
    if (f->in[FB_Z] && !(c.z = nl_in_data(f, FB_Z))) return -1;
    NL_PTR(float *, ms, nl_func_scratch(f, 0, 2 * ns + 1));
    NL_PTR(float *, accf, nl_func_scratch(f, 1, 6 * ns + 2));
    double *acc = (double *)(void *)accf, *var = acc + 2 * ns;
    if (nl_arg_bool(f, FB_BATCH_STAT)) {
        tn_stats(m, c.x, eps, acc, ms, ms + ns, var);
        if (m->size > 0) {
            NL_PTR(float *, rm, nl_array_host(nl_in(f, FB_MEAN)->data, NL_READWRITE));
            NL_PTR(float *, rv, nl_array_host(nl_in(f, FB_VAR)->data, NL_READWRITE));
            const double n = (double)m->count, unbias = n > 1 ? n / (n - 1) : 1.0;
            for (int64_t k = 0; k < ns; k++) {
                rm[k] = nl_bn_running(rm[k], decay, ms[k], 1.0);
                rv[k] = nl_bn_running(rv[k], decay, var[k], unbias);
            }
        }
    } else {
        NL_PTR(const float *, rm, nl_in_data(f, FB_MEAN));
        NL_PTR(const float *, rv, nl_in_data(f, FB_VAR));
        for (int64_t k = 0; k < ns; k++) {
            ms[k] = rm[k];
            ms[ns + k] = nl_tn_rstd(rv[k], eps);
        }
    }
    c.mean = ms;
    c.rstd = ms + ns;
    tn_forward(m, &c);
    return 0;
}

/* dy -> relu mask (y > 0) -> dz; then batch-norm backward. scratch 2: doubles;
 * scratch 3: the masked dy (x's size) */
static int fbn_backward(nl_func *f, const bool *prop, const bool *accum) {
    const norm_state *s = f->state;
    const tn_map *m = &s->m;
    const int64_t ns = m->nstat, n = m->size;
    const bool batch = nl_arg_bool(f, FB_BATCH_STAT);
    bool any = false;
    for (int i = 0; i < f->n_in; i++) any |= f->in[i] && prop[i];
    if (!any) return 0;
    if (!f->scratch[0]) return nl_error("forward must run before backward");
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    NL_PTR(const float *, y, nl_out_data_r(f, 0));
    NL_PTR(float *, dyr, nl_func_scratch(f, 3, n + 1));
    for (int64_t i = 0; i < n; i++) dyr[i] = y[i] > 0.0f ? dy[i] : 0.0f;
    if (f->in[FB_Z] && prop[FB_Z]) {
        NL_PTR(float *, dz, nl_in_grad(f, FB_Z, accum[FB_Z]));
        if (accum[FB_Z]) for (int64_t i = 0; i < n; i++) dz[i] += dyr[i];
        else memcpy(dz, dyr, (size_t)n * sizeof(float));
    }
    if (!prop[FB_X] && !prop[FB_BETA] && !prop[FB_GAMMA] && !prop[FB_MEAN] && !prop[FB_VAR]) return 0;
    tn_ctx c = {.m = m, .batch = batch, .dy = dyr};
    if (!(c.x = nl_in_data(f, FB_X)) || !(c.gamma = nl_in_data(f, FB_GAMMA))) return -1;
    NL_PTR(const float *, ms, f->scratch[0]);
    c.mean = ms;
    c.rstd = ms + ns;
    float *rstd_given = NULL;
    if (!batch) {   /* statistics from the running mean/variance as they are now */
        NL_PTR(const float *, rm, nl_in_data(f, FB_MEAN));
        NL_PTR(const float *, rv, nl_in_data(f, FB_VAR));
        const double eps = nl_arg_float(f, FB_EPS);
        rstd_given = nl_func_scratch(f, 0, 2 * ns + 1);
        if (!rstd_given) return -1;
        for (int64_t k = 0; k < ns; k++) {
            rstd_given[k] = rm[k];
            rstd_given[ns + k] = nl_tn_rstd(rv[k], eps);
        }
    }
    NL_PTR(float *, wsf, nl_func_scratch(f, 2, 2 * 4 * ns + 2));
    double *a = (double *)(void *)wsf, *b = a + ns, *db = b + ns, *dg = db + ns;
    for (int64_t k = 0; k < 2 * ns; k++) db[k] = 0;
    tn_sums(m, &c, a, b, db, dg);
    if (prop[FB_BETA] && put_grad(f, FB_BETA, accum[FB_BETA], db, ns)) return -1;
    if (prop[FB_GAMMA] && put_grad(f, FB_GAMMA, accum[FB_GAMMA], dg, ns)) return -1;
    if (prop[FB_X]) {
        c.a = a; c.b = b; c.accum = accum[FB_X];
        if (!(c.out = nl_in_grad(f, FB_X, accum[FB_X]))) return -1;
        nl_parallel_for(m->rows, m->inner * 4, tn_dx_range, &c);
    }
    for (int i = FB_MEAN; i <= FB_VAR; i++) {
        if (!prop[i]) continue;
        if (batch) {   /* running statistics get no gradient */
            if (zero_grad(f, i, accum[i])) return -1;
            continue;
        }
        /* dmean = -rstd * sum dy*g; dvar = -0.5 * rstd^2 * sum dy*g*xhat */
        for (int64_t k = 0; k < ns; k++) db[k] = nl_fbn_dstat(i == FB_MEAN, c.rstd[k], a[k], b[k]);
        if (put_grad(f, i, accum[i], db, ns)) return -1;
    }
    return 0;
}

const nl_fdef nl_fdef_fused_batch_normalization = {
    .name = "fused_batch_normalization",
    .doc = "y = relu(batch_normalization(x, beta, gamma, mean, variance, axes, decay_rate, eps, "
           "batch_stat) + z); z optional",
    .in_names = "x,beta,gamma,mean,variance,z", .n_in = 5, .n_opt_in = 1, .n_out = 1,
    .n_args = 5, .args = fbn_args,
    .setup = fbn_setup, .forward = fbn_forward, .backward = fbn_backward, .destroy = free_state,
    .grad_in_data = (1u << FB_X) | (1u << FB_GAMMA) | (1u << FB_MEAN) | (1u << FB_VAR),
    .grad_out_data = 1u << 0,
};

/* ------------------------------ weight normalization ------------------------------ */

/* the arguments' positions (WN_DIM, WN_EPS): norm_ext_plan.h */
static const nl_argdef wn_args[] = {
    {"dim", NL_ARG_AXIS, "1", NULL},
    {"eps", NL_ARG_FLOAT, "1e-12", NULL},
};

/* wn_state: norm_ext_plan.h */

static int wn_setup(nl_func *f) {
    const nl_var *w = nl_in(f, 0), *g = nl_in(f, 1);
    char ws[160], gs[160];
    nl_shape_str(ws, w->ndim, w->shape);
    nl_shape_str(gs, g->ndim, g->shape);
    int dim;
    if (w->ndim < 1) return nl_error("w %s must have 1 or more axes", ws);
    if (nl_norm_axis("dim", nl_arg_int(f, WN_DIM), w->ndim, &dim)) return -1;
    if (!(nl_arg_float(f, WN_EPS) > 0)) return nl_error("eps must be positive, got %g", nl_arg_float(f, WN_EPS));
    if (g->ndim != 1 || g->shape[0] != w->shape[dim])
        return nl_error("g has shape %s but must be {%lld} (w %s at dim %d)", gs,
                        (long long)w->shape[dim], ws, dim + 1);
    wn_state *s = malloc(sizeof *s);
    if (!s) return nl_error("out of memory");
    s->outer = s->inner = 1;
    for (int d = 0; d < dim; d++) s->outer *= w->shape[d];
    for (int d = dim + 1; d < w->ndim; d++) s->inner *= w->shape[d];
    s->j = w->shape[dim];
    f->state = s;
    nl_set_out_shape(f, 0, w->ndim, w->shape);
    return 0;
}

/* per j: norm[j] = sqrt(sum over (outer, inner) of w^2 + eps) into scratch 0 */
static int wn_norms(nl_func *f, const float *w, float **out) {
    const wn_state *s = f->state;
    float *nr = nl_func_scratch(f, 0, s->j + 1);
    if (!nr) return -1;
    const double eps = nl_arg_float(f, WN_EPS);
    for (int64_t j = 0; j < s->j; j++) {
        double a = 0;
        for (int64_t o = 0; o < s->outer; o++) {
            const float *r = w + (o * s->j + j) * s->inner;
            for (int64_t i = 0; i < s->inner; i++) a += (double)r[i] * r[i];
        }
        nr[j] = (float)sqrt(a + eps);
    }
    *out = nr;
    return 0;
}

/* w: (outer, J, inner), g: (J) -> y = g[j] * w / norm[j] */
static int wn_forward(nl_func *f) {
    const wn_state *s = f->state;
    NL_PTR(const float *, w, nl_in_data(f, 0));
    NL_PTR(const float *, g, nl_in_data(f, 1));
    NL_PTR(float *, y, nl_out_data(f, 0));
    float *nr;
    if (wn_norms(f, w, &nr)) return -1;
    for (int64_t o = 0; o < s->outer; o++)
        for (int64_t j = 0; j < s->j; j++) {
            const float k = g[j] / nr[j];
            const int64_t base = (o * s->j + j) * s->inner;
            for (int64_t i = 0; i < s->inner; i++) y[base + i] = k * w[base + i];
        }
    return 0;
}

/* dg[j] = sum(dy*w)/n; dw = g/n * (dy - w * sum(dy*w)/n^2) */
static int wn_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0] && !prop[1]) return 0;
    const wn_state *s = f->state;
    NL_PTR(const float *, w, nl_in_data(f, 0));
    NL_PTR(const float *, g, nl_in_data(f, 1));
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    float *nr;
    if (wn_norms(f, w, &nr)) return -1;
    NL_PTR(float *, sdf, nl_func_scratch(f, 1, 2 * s->j + 2));
    double *sdw = (double *)(void *)sdf;
    for (int64_t j = 0; j < s->j; j++) sdw[j] = 0;
    for (int64_t o = 0; o < s->outer; o++)
        for (int64_t j = 0; j < s->j; j++) {
            const int64_t base = (o * s->j + j) * s->inner;
            double a = 0;
            for (int64_t i = 0; i < s->inner; i++) a += (double)dy[base + i] * w[base + i];
            sdw[j] += a;
        }
    if (prop[1]) {
        NL_PTR(float *, dg, nl_in_grad(f, 1, accum[1]));
        for (int64_t j = 0; j < s->j; j++) {
            const float v = (float)(sdw[j] / nr[j]);
            dg[j] = accum[1] ? dg[j] + v : v;
        }
    }
    if (prop[0]) {
        NL_PTR(float *, dw, nl_in_grad(f, 0, accum[0]));
        for (int64_t o = 0; o < s->outer; o++)
            for (int64_t j = 0; j < s->j; j++) {
                float k, q;
                nl_wn_kq(g[j], nr[j], sdw[j], &k, &q);
                const int64_t base = (o * s->j + j) * s->inner;
                for (int64_t i = 0; i < s->inner; i++) {
                    const float v = nl_wn_dw(k, q, dy[base + i], w[base + i]);
                    dw[base + i] = accum[0] ? dw[base + i] + v : v;
                }
            }
    }
    return 0;
}

const nl_fdef nl_fdef_weight_normalization = {
    .name = "weight_normalization",
    .doc = "w_wn = g * w / sqrt(sum w^2 + eps), the sum over every axis but dim (default 1); "
           "g: (w.shape[dim])",
    .in_names = "w,g", .n_in = 2, .n_out = 1,
    .n_args = 2, .args = wn_args,
    .setup = wn_setup, .forward = wn_forward, .backward = wn_backward, .destroy = free_state,
    .grad_in_data = (1u << 0) | (1u << 1), .grad_out_data = 0,
};

/* -------------------------------- gradient clipping -------------------------------- */

static int copy_forward(nl_func *f) {
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(float *, y, nl_out_data(f, 0));
    memcpy(y, x, (size_t)nl_in(f, 0)->size * sizeof(float));
    return 0;
}

static int cgv_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0);
    static const char *const names[] = {"x", "min", "max"};
    for (int i = 1; i <= 2; i++)
        if (!nl_same_shape(nl_in(f, i), x)) {
            char s1[160], s2[160];
            return nl_error("input '%s' has shape %s but must have x's shape %s", names[i],
                            nl_shape_str(s1, nl_in(f, i)->ndim, nl_in(f, i)->shape),
                            nl_shape_str(s2, x->ndim, x->shape));
        }
    nl_set_out_shape(f, 0, x->ndim, x->shape);
    return 0;
}

/* dx = clamp(dy, min, max) element-wise; min/max get no gradient */
static int cgv_backward(nl_func *f, const bool *prop, const bool *accum) {
    for (int i = 1; i <= 2; i++)
        if (prop[i] && zero_grad(f, i, accum[i])) return -1;
    if (!prop[0]) return 0;
    const int64_t n = nl_in(f, 0)->size;
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    NL_PTR(const float *, lo, nl_in_data(f, 1));
    NL_PTR(const float *, hi, nl_in_data(f, 2));
    NL_PTR(float *, dx, nl_in_grad(f, 0, accum[0]));
    for (int64_t i = 0; i < n; i++) {
        const float v = nl_cgv_dx(dy[i], lo[i], hi[i]);
        dx[i] = accum[0] ? dx[i] + v : v;
    }
    return 0;
}

const nl_fdef nl_fdef_clip_grad_by_value = {
    .name = "clip_grad_by_value",
    .doc = "identity forward; backward clips the gradient element-wise to [min, max] (inputs of "
           "x's shape, which get no gradient)",
    .in_names = "x,min,max", .n_in = 3, .n_out = 1,
    .n_args = 0, .args = NULL,
    .setup = cgv_setup, .forward = copy_forward, .backward = cgv_backward,
    .grad_in_data = (1u << 1) | (1u << 2), .grad_out_data = 0,
};

/* CGN_* and the math: norm_ext_plan.h (shared with cuda/clip_grad.cu) */
static const nl_argdef cgn_args[] = {
    {"clip_norm", NL_ARG_FLOAT, "1.0", NULL},
    {"axes", NL_ARG_AXES, "nil", NULL},
};

static int cgn_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0);
    const int nd = x->ndim;
    bool red[NL_MAX_NDIM];
    if (axes_flags(f, CGN_AXES, "axes", nd, red)) return -1;
    const bool all = !nl_arg_given(f, CGN_AXES) || nl_arg_len(f, CGN_AXES) == 0;
    int64_t stat[NL_MAX_NDIM];
    for (int d = 0; d < nd; d++) stat[d] = (all || red[d]) ? 1 : x->shape[d];
    return norm_finish(f, nd, x->shape, stat, NULL, NULL, false, false, 0.0);
}

/* dx = clip_norm * dy / sqrt(sum over axes of dy^2) */
static int cgn_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    const norm_state *s = f->state;
    const tn_map *m = &s->m;
    const double clip = nl_arg_float(f, CGN_CLIP_NORM);
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    NL_PTR(float *, dx, nl_in_grad(f, 0, accum[0]));
    NL_PTR(float *, wsf, nl_func_scratch(f, 0, 2 * m->nstat + 2));
    double *sq = (double *)(void *)wsf;
    for (int64_t k = 0; k < m->nstat; k++) sq[k] = 0;
    const int64_t inner = m->inner, si = m->st[M_STAT][m->nd - 1];
    int64_t off[M_N];
    for (int64_t r = 0; r < m->rows; r++) {
        tn_row(m, r, off);
        const float *g = dy + r * inner;
        for (int64_t i = 0; i < inner; i++) sq[off[0] + i * si] += (double)g[i] * g[i];
    }
    for (int64_t k = 0; k < m->nstat; k++) sq[k] = nl_cgn_scale(sq[k], clip);
    for (int64_t r = 0; r < m->rows; r++) {
        tn_row(m, r, off);
        const float *g = dy + r * inner;
        float *d = dx + r * inner;
        for (int64_t i = 0; i < inner; i++) {
            const float v = nl_cgn_dx(g[i], sq[off[0] + i * si]);
            d[i] = accum[0] ? d[i] + v : v;
        }
    }
    return 0;
}

const nl_fdef nl_fdef_clip_grad_by_norm = {
    .name = "clip_grad_by_norm",
    .doc = "identity forward; backward rescales the gradient to norm clip_norm over axes "
           "(default: all): dx = clip_norm * dy / sqrt(sum dy^2)",
    .in_names = "x", .n_in = 1, .n_out = 1,
    .n_args = 2, .args = cgn_args,
    .setup = cgn_setup, .forward = copy_forward, .backward = cgn_backward, .destroy = free_state,
    .grad_in_data = 0, .grad_out_data = 0,
};
