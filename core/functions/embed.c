/*
 * embed.c - embedding lookup, NNabla's Embed (src/nbla/function/generic/embed.cpp):
 *
 *   embed(x0, w)
 *     x0: (I...) holding 0-based row ids 0..n-1 stored as floats -- class-like data, the
 *     same convention as one_hot and softmax_cross_entropy's labels (not Lua's 1-based
 *     positions); w: (n, W...); y: (I..., W...) with y[i, :] = w[x0[i], :].
 * An id that is not an integer in 0..n-1 makes forward (and backward) fail, naming it.
 * Backward: dw[x0[i], :] += dy[i, :]; the ids get no gradient (zeros when asked for).
 */
#include "../src/function.h"
#include "index_plans.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* embed_state (n_ids, rows, row): index_plans.h */

static void embed_destroy(nl_func *f) { free(f->state); }

static int embed_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0), *w = nl_in(f, 1);
    char xs[160], ws[160];
    nl_shape_str(xs, x->ndim, x->shape);
    nl_shape_str(ws, w->ndim, w->shape);
    if (w->ndim < 1) return nl_error("w %s must have 1 or more axes (n, features...)", ws);
    const int ondim = x->ndim + w->ndim - 1;
    if (ondim > NL_MAX_NDIM)
        return nl_error("x0 %s and w %s would give a %d-d output (at most %d)", xs, ws, ondim, NL_MAX_NDIM);
    int64_t oshape[NL_MAX_NDIM];
    for (int d = 0; d < x->ndim; d++) oshape[d] = x->shape[d];
    for (int d = 1; d < w->ndim; d++) oshape[x->ndim + d - 1] = w->shape[d];
    embed_state *s = malloc(sizeof *s);
    if (!s) return nl_error("out of memory");
    s->n_ids = x->size;
    s->rows = w->shape[0];
    s->row = 1;
    for (int d = 1; d < w->ndim; d++) s->row *= w->shape[d];
    f->state = s;
    nl_set_out_shape(f, 0, ondim, oshape);
    return 0;
}

/* Checks id i of x0 against 0..rows-1. */
static int embed_id(const embed_state *s, const float *x, int64_t i, int64_t *out) {
    const float v = x[i];
    if (!nl_embed_id_ok(v, s->rows)) return nl_embed_bad(v, i, s->rows);
    *out = (int64_t)v;
    return 0;
}

/* x0: (n_ids), w: (rows, row) -> y: (n_ids, row) */
static int embed_forward(nl_func *f) {
    const embed_state *s = f->state;
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(const float *, w, nl_in_data(f, 1));
    NL_PTR(float *, y, nl_out_data(f, 0));
    for (int64_t i = 0; i < s->n_ids; i++) {
        int64_t id;
        if (embed_id(s, x, i, &id)) return -1;
        memcpy(y + i * s->row, w + id * s->row, (size_t)s->row * sizeof(float));
    }
    return 0;
}

/* dy: (n_ids, row) -> dw: (rows, row) scatter-added */
static int embed_backward(nl_func *f, const bool *prop, const bool *accum) {
    const embed_state *s = f->state;
    if (prop[0] && !accum[0]) {   /* ids get no gradient */
        NL_PTR(float *, dx, nl_in_grad(f, 0, false));
        memset(dx, 0, (size_t)s->n_ids * sizeof(float));
    }
    if (!prop[1]) return 0;
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    NL_PTR(float *, dw, nl_in_grad(f, 1, accum[1]));
    if (!accum[1]) memset(dw, 0, (size_t)(s->rows * s->row) * sizeof(float));
    for (int64_t i = 0; i < s->n_ids; i++) {
        int64_t id;
        if (embed_id(s, x, i, &id)) return -1;
        float *d = dw + id * s->row;
        const float *g = dy + i * s->row;
        for (int64_t j = 0; j < s->row; j++) d[j] += g[j];
    }
    return 0;
}

const nl_fdef nl_fdef_embed = {
    .name = "embed",
    .doc = "y[i, ...] = w[x0[i], ...]: x0 (I...) holds 0-based row ids (as floats), w (n, W...) "
           "-> y (I..., W...)",
    .in_names = "x0,w",
    .n_in = 2,
    .n_out = 1,
    .n_args = 0,
    .args = NULL,
    .setup = embed_setup,
    .forward = embed_forward,
    .backward = embed_backward,
    .destroy = embed_destroy,
    .grad_in_data = 1u << 0,
    .grad_out_data = 0,
};
