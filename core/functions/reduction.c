/*
 * reduction.c - sum and mean over a set of axes (nil = all; Lua 1-based, negatives from
 * the end), with or without keepdims. Axes of size 1 are dropped and neighbouring axes
 * of the same kind merged, so the common layouts (everything, leading or trailing
 * blocks, one middle block) run as plain (A, R, B) loops; other layouts use a strided walk.
 */
#include "../src/function.h"
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
