/*
 * reduction.c - sum, mean, max, min, prod and norm over a set of axes (nil = all; Lua
 * 1-based, negatives from the end), with or without keepdims; cumsum and cumprod along
 * one axis. For sum and mean, axes of size 1 are dropped and neighbouring axes
 * of the same kind merged, so the common layouts (everything, leading or trailing
 * blocks, one middle block) run as plain (A, R, B) loops; other layouts use a strided walk.
 */
#include "../src/function.h"
#include "reduce_plan.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { RD_AXIS, RD_KEEPDIMS };
static const nl_argdef reduce_args[] = {
    {"axis", NL_ARG_AXES, "nil", NULL},
    {"keepdims", NL_ARG_BOOL, "false", NULL},
};

typedef struct reduce_plan {
    bool fast;                  /* x is (A, R, B) with R reduced, y is (A, B) */
    int64_t A, R, B;
    int ng;                     /* generic: merged axes */
    int64_t gsize[NL_MAX_NDIM]; /* merged axis sizes (row-major) */
    int64_t ostride[NL_MAX_NDIM]; /* y's stride on each merged axis, 0 on reduced ones */
    double scale;               /* 1 for sum, 1/(reduced count) for mean */
} reduce_plan;

static void reduce_destroy(nl_func *f) { free(f->state); }

static int reduce_setup_common(nl_func *f, bool mean) {
    const nl_var *x = nl_in(f, 0);
    int nd = x->ndim;
    bool red[NL_MAX_NDIM] = {false};
    if (!nl_arg_given(f, RD_AXIS)) {
        for (int d = 0; d < nd; d++) red[d] = true;
    } else {
        for (int j = 0; j < nl_arg_len(f, RD_AXIS); j++) {
            int a;
            if (nl_norm_axis("axis", nl_arg_at(f, RD_AXIS, j), nd, &a)) return -1;
            if (red[a])
                return nl_error("argument 'axis' names axis %d twice (entry %d is %lld)", a + 1, j + 1,
                                (long long)nl_arg_at(f, RD_AXIS, j));
            red[a] = true;
        }
    }
    bool keep = nl_arg_bool(f, RD_KEEPDIMS);
    int64_t oshape[NL_MAX_NDIM];
    int ond = 0;
    int64_t rcount = 1;
    for (int d = 0; d < nd; d++) {
        if (red[d]) { rcount *= x->shape[d]; if (keep) oshape[ond++] = 1; }
        else oshape[ond++] = x->shape[d];
    }
    nl_set_out_shape(f, 0, ond, oshape);

    reduce_plan *p = calloc(1, sizeof *p);
    if (!p) return nl_error("out of memory");
    f->state = p;
    p->scale = !mean ? 1.0 : rcount > 0 ? 1.0 / (double)rcount : NAN;   /* empty mean: nan, as numpy */
    /* merge: drop size-1 axes, fuse neighbours of the same kind */
    bool gred[NL_MAX_NDIM];
    int ng = 0;
    for (int d = 0; d < nd; d++) {
        if (x->shape[d] == 1) continue;
        if (ng > 0 && gred[ng - 1] == red[d]) { p->gsize[ng - 1] *= x->shape[d]; continue; }
        gred[ng] = red[d];
        p->gsize[ng++] = x->shape[d];
    }
    p->ng = ng;
    int64_t s = 1;
    for (int g = ng - 1; g >= 0; g--) {
        if (gred[g]) p->ostride[g] = 0;
        else { p->ostride[g] = s; s *= p->gsize[g]; }
    }
    /* (A, R, B) patterns: K, R, KR, RK, KRK (no more than one reduced block) */
    int nred = 0, rpos = -1;
    for (int g = 0; g < ng; g++) if (gred[g]) { nred++; rpos = g; }
    if (nred == 0) {
        p->fast = true; p->A = 1; p->R = 1; p->B = x->size;
    } else if (nred == 1) {
        p->fast = true; p->A = 1; p->R = p->gsize[rpos]; p->B = 1;
        for (int g = 0; g < rpos; g++) p->A *= p->gsize[g];
        for (int g = rpos + 1; g < ng; g++) p->B *= p->gsize[g];
    }
    return 0;
}

static int sum_setup(nl_func *f) { return reduce_setup_common(f, false); }
static int mean_setup(nl_func *f) { return reduce_setup_common(f, true); }

/* x: (A, R, B) or the merged axes gsize; y: (A, B) = scale * sum over R */
static int reduce_forward(nl_func *f) {
    const reduce_plan *p = f->state;
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(float *, y, nl_out_data(f, 0));
    const int64_t ysize = nl_out(f, 0)->size, xsize = nl_in(f, 0)->size;
    if (p->fast) {
        const int64_t A = p->A, R = p->R, B = p->B;
        if (B == 1) {
            for (int64_t a = 0; a < A; a++) {
                const float *xa = x + a * R;
                double s = 0;
                for (int64_t r = 0; r < R; r++) s += xa[r];
                y[a] = (float)(s * p->scale);
            }
        } else {
            /* accumulate rows of B in double */
            NL_PTR(float *, ws, nl_func_scratch(f, 0, 2 * B + 2));
            double *acc = (double *)(void *)ws;
            for (int64_t a = 0; a < A; a++) {
                for (int64_t b = 0; b < B; b++) acc[b] = 0;
                const float *xa = x + a * R * B;
                for (int64_t r = 0; r < R; r++)
                    for (int64_t b = 0; b < B; b++) acc[b] += xa[r * B + b];
                for (int64_t b = 0; b < B; b++) y[a * B + b] = (float)(acc[b] * p->scale);
            }
        }
        return 0;
    }
    NL_PTR(float *, ws, nl_func_scratch(f, 0, 2 * ysize + 2));
    double *acc = (double *)(void *)ws;
    for (int64_t j = 0; j < ysize; j++) acc[j] = 0;
    /* the last merged axis is walked as a contiguous run, the others by the odometer */
    const int last = p->ng - 1;
    const int64_t run = p->gsize[last];
    const bool last_red = p->ostride[last] == 0;
    int64_t idx[NL_MAX_NDIM] = {0}, off = 0;
    for (int64_t i = 0; i < xsize; i += run) {
        if (last_red) {
            double s = 0;
            for (int64_t j = 0; j < run; j++) s += x[i + j];
            acc[off] += s;
        } else {
            for (int64_t j = 0; j < run; j++) acc[off + j] += x[i + j];
        }
        for (int g = last - 1; g >= 0; g--) {
            off += p->ostride[g];
            if (++idx[g] < p->gsize[g]) break;
            off -= p->ostride[g] * p->gsize[g];
            idx[g] = 0;
        }
    }
    for (int64_t j = 0; j < ysize; j++) y[j] = (float)(acc[j] * p->scale);
    return 0;
}

/* dy: (A, B); dx: (A, R, B) = scale * dy broadcast over R */
static int reduce_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    const reduce_plan *p = f->state;
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    NL_PTR(float *, dx, nl_in_grad(f, 0, accum[0]));
    const float sc = (float)p->scale;
    const bool acc = accum[0];
    if (p->fast) {
        const int64_t A = p->A, R = p->R, B = p->B;
        for (int64_t a = 0; a < A; a++)
            for (int64_t r = 0; r < R; r++) {
                float *d = dx + (a * R + r) * B;
                const float *g = dy + a * B;
                if (acc) for (int64_t b = 0; b < B; b++) d[b] += g[b] * sc;
                else for (int64_t b = 0; b < B; b++) d[b] = g[b] * sc;
            }
        return 0;
    }
    const int64_t xsize = nl_in(f, 0)->size;
    const int last = p->ng - 1;
    const int64_t run = p->gsize[last], jstep = p->ostride[last];   /* 0 or 1 */
    int64_t idx[NL_MAX_NDIM] = {0}, off = 0;
    for (int64_t i = 0; i < xsize; i += run) {
        if (acc) for (int64_t j = 0; j < run; j++) dx[i + j] += dy[off + j * jstep] * sc;
        else for (int64_t j = 0; j < run; j++) dx[i + j] = dy[off + j * jstep] * sc;
        for (int g = last - 1; g >= 0; g--) {
            off += p->ostride[g];
            if (++idx[g] < p->gsize[g]) break;
            off -= p->ostride[g] * p->gsize[g];
            idx[g] = 0;
        }
    }
    return 0;
}

const nl_fdef nl_fdef_sum = {
    .name = "sum",
    .doc = "y = sum of x over the given axes (nil = all; a number or a list, 1-based); keepdims keeps them as size 1",
    .in_names = "x", .n_in = 1, .n_out = 1,
    .n_args = 2, .args = reduce_args,
    .setup = sum_setup, .forward = reduce_forward, .backward = reduce_backward, .destroy = reduce_destroy,
};

const nl_fdef nl_fdef_mean = {
    .name = "mean",
    .doc = "y = mean of x over the given axes (nil = all; a number or a list, 1-based); keepdims keeps them as size 1",
    .in_names = "x", .n_in = 1, .n_out = 1,
    .n_args = 2, .args = reduce_args,
    .setup = mean_setup, .forward = reduce_forward, .backward = reduce_backward, .destroy = reduce_destroy,
};

/* ==== max, min, prod, norm: reductions that look at each reduced group whole ==========
 * The plan (group_plan, reduce_plan.h) lists, for every output element j, the input offset
 * of its group's first element (base[j]) and, for the r-th member of a group, its offset
 * from there (roff[r], row-major over the reduced axes in axis order). */

#include "nd_view.h"

static void group_destroy(nl_func *f) {
    group_plan *p = f->state;
    if (!p) return;
    free(p->base);
    free(p->roff);
    free(p->arg);
    free(p);
}

/* Parses the axes argument (nil = all) into red[], naming duplicates and bad axes. */
static int reduce_axes(nl_func *f, int k, int nd, bool *red) {
    for (int d = 0; d < nd; d++) red[d] = !nl_arg_given(f, k);
    if (!nl_arg_given(f, k)) return 0;
    for (int j = 0; j < nl_arg_len(f, k); j++) {
        int a;
        if (nl_norm_axis("axis", nl_arg_at(f, k, j), nd, &a)) return -1;
        if (red[a])
            return nl_error("argument 'axis' names axis %d twice (entry %d is %lld)", a + 1, j + 1,
                            (long long)nl_arg_at(f, k, j));
        red[a] = true;
    }
    return 0;
}

/* Builds the plan and the reduced output shape (keepdims keeps size-1 axes); the
 * caller sets the output shapes. */
static int group_setup(nl_func *f, int axis_arg, bool keep, int *ond, int64_t *oshape) {
    const nl_var *x = nl_in(f, 0);
    const int nd = x->ndim;
    bool red[NL_MAX_NDIM];
    if (reduce_axes(f, axis_arg, nd, red)) return -1;
    group_plan *p = calloc(1, sizeof *p);
    if (!p) return nl_error("out of memory");
    f->state = p;
    int64_t xst[NL_MAX_NDIM];
    nl_row_strides(nd, x->shape, xst);
    int64_t ysize = 1, R = 1;
    *ond = 0;
    for (int d = 0; d < nd; d++) {
        if (red[d]) { R *= x->shape[d]; if (keep) oshape[(*ond)++] = 1; }
        else { ysize *= x->shape[d]; oshape[(*ond)++] = x->shape[d]; }
    }
    p->ysize = ysize;
    p->R = R;
    /* the kept axes (walked for base) and the reduced axes (for roff), each in axis order */
    p->kept.n = p->red.n = 0;
    for (int d = 0; d < nd; d++) {
        group_axes *g = red[d] ? &p->red : &p->kept;
        g->shape[g->n] = x->shape[d];
        g->stride[g->n++] = xst[d];
    }
    p->base = malloc((size_t)(ysize > 0 ? ysize : 1) * sizeof(int64_t));
    p->roff = malloc((size_t)(R > 0 ? R : 1) * sizeof(int64_t));
    if (!p->base || !p->roff) return nl_error("out of memory");
    for (int64_t j = 0; j < ysize; j++) p->base[j] = group_offset(&p->kept, j);
    for (int64_t r = 0; r < R; r++) p->roff[r] = group_offset(&p->red, r);
    return 0;
}

/* ---- max, min ---- */

enum { MM_AXIS, MM_KEEPDIMS, MM_WITH_INDEX, MM_ONLY_INDEX };
static const nl_argdef maxmin_args[] = {
    {"axis", NL_ARG_AXES, "nil", NULL},
    {"keepdims", NL_ARG_BOOL, "false", NULL},
    {"with_index", NL_ARG_BOOL, "false", NULL},
    {"only_index", NL_ARG_BOOL, "false", NULL},
};

static int maxmin_setup_common(nl_func *f, bool is_min) {
    int ond;
    int64_t oshape[NL_MAX_NDIM];
    if (group_setup(f, MM_AXIS, nl_arg_bool(f, MM_KEEPDIMS), &ond, oshape)) return -1;
    group_plan *p = f->state;
    p->is_min = is_min;
    if (p->R == 0 && p->ysize > 0) {
        char s1[160];
        const nl_var *x = nl_in(f, 0);
        return nl_error("cannot take the %s over axes of size 0 (input shape %s)", is_min ? "min" : "max",
                        nl_shape_str(s1, x->ndim, x->shape));
    }
    p->arg = calloc((size_t)(p->ysize > 0 ? p->ysize : 1), sizeof(int64_t));
    if (!p->arg) return nl_error("out of memory");
    bool only = nl_arg_bool(f, MM_ONLY_INDEX), with = nl_arg_bool(f, MM_WITH_INDEX);
    if (only) { p->n_val = -1; p->n_idx = 0; }
    else if (with) { p->n_val = 0; p->n_idx = 1; }
    else { p->n_val = 0; p->n_idx = -1; }
    int n_out = (p->n_val >= 0) + (p->n_idx >= 0);
    if (nl_set_n_out(f, n_out)) return -1;
    for (int o = 0; o < n_out; o++) nl_set_out_shape(f, o, ond, oshape);
    return 0;
}
static int max_setup(nl_func *f) { return maxmin_setup_common(f, false); }
static int min_setup(nl_func *f) { return maxmin_setup_common(f, true); }

/* The forward loops over output elements run on the engine's threads when large. */
typedef struct group_fwd { const group_plan *p; const float *x; float *y, *yi; } group_fwd;

/* x: any shape; values: the reduced shape = the extreme of each group (the first one on
 * ties); indices: the same shape, the winner's 1-based position within its group */
static void maxmin_range(int64_t j0, int64_t j1, void *ctx) {
    const group_fwd *c = ctx;
    const group_plan *p = c->p;
    const int64_t R = p->R;
    for (int64_t j = j0; j < j1; j++) {
        const float *g = c->x + p->base[j];
        float best = g[p->roff[0]];
        int64_t at = 0;
        for (int64_t r = 1; r < R; r++) {
            float v = g[p->roff[r]];
            if (p->is_min ? v < best : v > best) { best = v; at = r; }
        }
        p->arg[j] = at;
        if (c->y) c->y[j] = best;
        if (c->yi) c->yi[j] = (float)(at + 1);
    }
}

static int maxmin_forward(nl_func *f) {
    group_plan *p = f->state;
    NL_PTR(const float *, x, nl_in_data(f, 0));
    float *yv = NULL, *yi = NULL;
    if (p->n_val >= 0) { NL_PTR(float *, t, nl_out_data(f, p->n_val)); yv = t; }
    if (p->n_idx >= 0) { NL_PTR(float *, t, nl_out_data(f, p->n_idx)); yi = t; }
    group_fwd c = {p, x, yv, yi};
    nl_parallel_for(p->ysize, p->R, maxmin_range, &c);
    return 0;
}

/* dvalues: the reduced shape; dx: x's shape, dvalues at each winner, zero elsewhere */
static int maxmin_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    const group_plan *p = f->state;
    NL_PTR(float *, dx, nl_in_grad(f, 0, accum[0]));
    nl_grad_clear(dx, nl_in(f, 0)->size, accum[0]);
    if (p->n_val < 0) return 0;       /* only_index: indices carry no gradient */
    NL_PTR(const float *, dy, nl_out_grad(f, p->n_val));
    for (int64_t j = 0; j < p->ysize; j++) dx[p->base[j] + p->roff[p->arg[j]]] += dy[j];
    return 0;
}

const nl_fdef nl_fdef_max = {
    .name = "max",
    .doc = "y = max of x over the given axes (nil = all; 1-based); keepdims keeps them as size 1. "
           "with_index returns (values, indices), only_index returns indices alone: each index is the "
           "1-based position of the maximum within its reduced group (row-major over the reduced axes; "
           "along the axis when one axis is reduced), as a float; ties go to the first",
    .in_names = "x", .n_in = 1, .n_out = -1,
    .n_args = 4, .args = maxmin_args,
    .setup = max_setup, .forward = maxmin_forward, .backward = maxmin_backward, .destroy = group_destroy,
};

const nl_fdef nl_fdef_min = {
    .name = "min",
    .doc = "y = min of x over the given axes (nil = all; 1-based); keepdims keeps them as size 1. "
           "with_index returns (values, indices), only_index returns indices alone: each index is the "
           "1-based position of the minimum within its reduced group (row-major over the reduced axes; "
           "along the axis when one axis is reduced), as a float; ties go to the first",
    .in_names = "x", .n_in = 1, .n_out = -1,
    .n_args = 4, .args = maxmin_args,
    .setup = min_setup, .forward = maxmin_forward, .backward = maxmin_backward, .destroy = group_destroy,
};

/* ---- prod ---- */

static int prod_setup(nl_func *f) {
    int ond;
    int64_t oshape[NL_MAX_NDIM];
    if (group_setup(f, RD_AXIS, nl_arg_bool(f, RD_KEEPDIMS), &ond, oshape)) return -1;
    nl_set_out_shape(f, 0, ond, oshape);
    return 0;
}

/* x: any shape; y: the reduced shape = product of each group (1 for an empty group) */
static void prod_range(int64_t j0, int64_t j1, void *ctx) {
    const group_fwd *c = ctx;
    const group_plan *p = c->p;
    for (int64_t j = j0; j < j1; j++) {
        const float *g = c->x + p->base[j];
        double s = 1;
        for (int64_t r = 0; r < p->R; r++) s *= g[p->roff[r]];
        c->y[j] = (float)s;
    }
}

static int prod_forward(nl_func *f) {
    const group_plan *p = f->state;
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(float *, y, nl_out_data(f, 0));
    group_fwd c = {p, x, y, NULL};
    nl_parallel_for(p->ysize, p->R, prod_range, &c);
    return 0;
}

/* dy: the reduced shape; dx: x's shape = dy * product of the group's other members
 * (prefix and suffix products, so zeros in x are exact) */
static int prod_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    const group_plan *p = f->state;
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    NL_PTR(float *, dx, nl_in_grad(f, 0, accum[0]));
    const int64_t R = p->R;
    NL_PTR(float *, ws, nl_func_scratch(f, 0, 2 * R + 2));
    double *pre = (double *)(void *)ws;
    for (int64_t j = 0; j < p->ysize; j++) {
        const float *g = x + p->base[j];
        float *d = dx + p->base[j];
        double acc = 1;
        for (int64_t r = 0; r < R; r++) { pre[r] = acc; acc *= g[p->roff[r]]; }
        double suf = dy[j];
        for (int64_t r = R - 1; r >= 0; r--) {
            float v = (float)(pre[r] * suf);
            if (accum[0]) d[p->roff[r]] += v; else d[p->roff[r]] = v;
            suf *= g[p->roff[r]];
        }
    }
    return 0;
}

const nl_fdef nl_fdef_prod = {
    .name = "prod",
    .doc = "y = product of x over the given axes (nil = all; 1-based); keepdims keeps them as size 1; "
           "the gradient is exact at zeros",
    .in_names = "x", .n_in = 1, .n_out = 1,
    .n_args = 2, .args = reduce_args,
    .setup = prod_setup, .forward = prod_forward, .backward = prod_backward, .destroy = group_destroy,
    .grad_in_data = 1,
};

/* ---- norm ---- */

enum { NM_P, NM_AXIS, NM_KEEPDIMS };
static const nl_argdef norm_args[] = {
    {"p", NL_ARG_FLOAT, "2", NULL},
    {"axis", NL_ARG_AXES, "nil", NULL},
    {"keepdims", NL_ARG_BOOL, "false", NULL},
};

static int norm_setup(nl_func *f) {
    double pv = nl_arg_float(f, NM_P);
    if (!(pv >= 1) || !isfinite(pv)) return nl_error("argument 'p' is %g; the order of the norm must be a finite number >= 1", pv);
    int ond;
    int64_t oshape[NL_MAX_NDIM];
    if (group_setup(f, NM_AXIS, nl_arg_bool(f, NM_KEEPDIMS), &ond, oshape)) return -1;
    ((group_plan *)f->state)->p = pv;
    nl_set_out_shape(f, 0, ond, oshape);
    return 0;
}

/* x: any shape; y: the reduced shape = (sum |x|^p)^(1/p) per group */
static void norm_range(int64_t j0, int64_t j1, void *ctx) {
    const group_fwd *c = ctx;
    const group_plan *p = c->p;
    const double pv = p->p;
    for (int64_t j = j0; j < j1; j++) {
        const float *g = c->x + p->base[j];
        double s = 0;
        if (pv == 2) { for (int64_t r = 0; r < p->R; r++) { double v = g[p->roff[r]]; s += v * v; } c->y[j] = (float)sqrt(s); }
        else if (pv == 1) { for (int64_t r = 0; r < p->R; r++) s += fabs((double)g[p->roff[r]]); c->y[j] = (float)s; }
        else { for (int64_t r = 0; r < p->R; r++) s += pow(fabs((double)g[p->roff[r]]), pv); c->y[j] = (float)pow(s, 1 / pv); }
    }
}

static int norm_forward(nl_func *f) {
    const group_plan *p = f->state;
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(float *, y, nl_out_data(f, 0));
    group_fwd c = {p, x, y, NULL};
    nl_parallel_for(p->ysize, p->R, norm_range, &c);
    return 0;
}

/* dy: the reduced shape; dx = dy * sign(x) |x|^(p-1) / y^(p-1) (0 where y = 0) */
static int norm_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    const group_plan *p = f->state;
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(const float *, y, nl_out_data_r(f, 0));
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    NL_PTR(float *, dx, nl_in_grad(f, 0, accum[0]));
    const double pv = p->p;
    for (int64_t j = 0; j < p->ysize; j++) {
        const float *g = x + p->base[j];
        float *d = dx + p->base[j];
        double yj = y[j];
        double scale = yj > 0 ? dy[j] / pow(yj, pv - 1) : 0;
        for (int64_t r = 0; r < p->R; r++) {
            double gr = norm_grad_term(g[p->roff[r]], pv);
            float o = (float)(scale * gr);
            if (accum[0]) d[p->roff[r]] += o; else d[p->roff[r]] = o;
        }
    }
    return 0;
}

const nl_fdef nl_fdef_norm = {
    .name = "norm",
    .doc = "y = (sum |x|^p)^(1/p) over the given axes (nil = all; 1-based), p >= 1; keepdims keeps them as size 1",
    .in_names = "x", .n_in = 1, .n_out = 1,
    .n_args = 3, .args = norm_args,
    .setup = norm_setup, .forward = norm_forward, .backward = norm_backward, .destroy = group_destroy,
    .grad_in_data = 1, .grad_out_data = 1,
};

/* ==== cumsum, cumprod: scans along one axis, x viewed as (A, N, B) (cum_plan, reduce_plan.h) */

enum { CS_AXIS, CS_EXCLUSIVE, CS_REVERSE };
static const nl_argdef cum_args[] = {
    {"axis", NL_ARG_AXIS, "1", NULL},
    {"exclusive", NL_ARG_BOOL, "false", NULL},
    {"reverse", NL_ARG_BOOL, "false", NULL},
};

static int cum_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0);
    int a;
    if (nl_norm_axis("axis", nl_arg_int(f, CS_AXIS), x->ndim, &a)) return -1;
    cum_plan *p = calloc(1, sizeof *p);
    if (!p) return nl_error("out of memory");
    f->state = p;
    p->A = 1; p->B = 1; p->N = x->shape[a];
    for (int d = 0; d < a; d++) p->A *= x->shape[d];
    for (int d = a + 1; d < x->ndim; d++) p->B *= x->shape[d];
    p->exclusive = nl_arg_bool(f, CS_EXCLUSIVE);
    p->reverse = nl_arg_bool(f, CS_REVERSE);
    nl_set_out_shape(f, 0, x->ndim, x->shape);
    return 0;
}

/* x: (A, N, B); y: (A, N, B) = running sum (product) along N in scan order; exclusive
 * leaves the current element out (the first is 0 or 1) */
static int cum_forward_common(nl_func *f, bool prod) {
    const cum_plan *p = f->state;
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(float *, y, nl_out_data(f, 0));
    for (int64_t a = 0; a < p->A; a++)
        for (int64_t b = 0; b < p->B; b++) {
            double acc = prod ? 1 : 0;
            for (int64_t i = 0; i < p->N; i++) {
                int64_t o = cum_at(p, a, b, i);
                if (p->exclusive) { y[o] = (float)acc; acc = prod ? acc * x[o] : acc + x[o]; }
                else { acc = prod ? acc * x[o] : acc + x[o]; y[o] = (float)acc; }
            }
        }
    return 0;
}
static int cumsum_forward(nl_func *f) { return cum_forward_common(f, false); }
static int cumprod_forward(nl_func *f) { return cum_forward_common(f, true); }

/* dy: (A, N, B); dx = the running sum of dy taken the other way */
static int cumsum_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    const cum_plan *p = f->state;
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    NL_PTR(float *, dx, nl_in_grad(f, 0, accum[0]));
    for (int64_t a = 0; a < p->A; a++)
        for (int64_t b = 0; b < p->B; b++) {
            double acc = 0;
            for (int64_t i = p->N - 1; i >= 0; i--) {
                int64_t o = cum_at(p, a, b, i);
                double v;
                if (p->exclusive) { v = acc; acc += dy[o]; }
                else { acc += dy[o]; v = acc; }
                if (accum[0]) dx[o] += (float)v; else dx[o] = (float)v;
            }
        }
    return 0;
}

/* dy: (A, N, B); in scan order dx_i = P_i * S_i with P_i the product of x before i and
 * S_i = dy_i + x_{i+1} S_{i+1} (inclusive) or dy_{i+1} + x_{i+1} S_{i+1} (exclusive):
 * exact where x has zeros */
static int cumprod_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    const cum_plan *p = f->state;
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    NL_PTR(float *, dx, nl_in_grad(f, 0, accum[0]));
    const int64_t N = p->N;
    NL_PTR(float *, ws, nl_func_scratch(f, 0, 2 * N + 2));
    double *S = (double *)(void *)ws;
    for (int64_t a = 0; a < p->A; a++)
        for (int64_t b = 0; b < p->B; b++) {
            double s = 0;
            for (int64_t i = N - 1; i >= 0; i--) {
                if (i == N - 1) s = p->exclusive ? 0 : dy[cum_at(p, a, b, i)];
                else {
                    double xn = x[cum_at(p, a, b, i + 1)];
                    s = (p->exclusive ? dy[cum_at(p, a, b, i + 1)] : dy[cum_at(p, a, b, i)]) + xn * s;
                }
                S[i] = s;
            }
            double pre = 1;
            for (int64_t i = 0; i < N; i++) {
                int64_t o = cum_at(p, a, b, i);
                float v = (float)(pre * S[i]);
                if (accum[0]) dx[o] += v; else dx[o] = v;
                pre *= x[o];
            }
        }
    return 0;
}

static void cum_destroy(nl_func *f) { free(f->state); }

const nl_fdef nl_fdef_cumsum = {
    .name = "cumsum",
    .doc = "y = cumulative sum of x along axis (1-based, default 1); exclusive leaves each element out "
           "(y starts at 0), reverse sums from the end",
    .in_names = "x", .n_in = 1, .n_out = 1,
    .n_args = 3, .args = cum_args,
    .setup = cum_setup, .forward = cumsum_forward, .backward = cumsum_backward, .destroy = cum_destroy,
};

const nl_fdef nl_fdef_cumprod = {
    .name = "cumprod",
    .doc = "y = cumulative product of x along axis (1-based, default 1); exclusive leaves each element out "
           "(y starts at 1), reverse multiplies from the end; the gradient is exact at zeros",
    .in_names = "x", .n_in = 1, .n_out = 1,
    .n_args = 3, .args = cum_args,
    .setup = cum_setup, .forward = cumprod_forward, .backward = cumprod_backward, .destroy = cum_destroy,
    .grad_in_data = 1,
};
