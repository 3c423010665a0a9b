/*
 * loss.c - element-wise losses, not averaged (wrap them in F.mean), NNabla semantics:
 *   softmax_cross_entropy(x, target, axis=-1): target holds 0-based class ids stored as
 *     floats, with size 1 along axis; y = -log softmax(x)[target] (size 1 along axis).
 *     A label that is not an integer in 0..C-1 makes forward fail.
 *   squared_error(x0, x1): y = (x0 - x1)^2, same shapes.
 */
#include "../src/function.h"
#include "vmath.h"
#include <math.h>
#include <string.h>

/* ---- softmax_cross_entropy ------------------------------------------------------- */

enum { SCE_AXIS };
static const nl_argdef sce_args[] = {{"axis", NL_ARG_AXIS, "-1", NULL}};

/* x: (outer, C, inner) around the axis; target and y: (outer, 1, inner) */
static int sce_dims(nl_func *f, int64_t *outer, int64_t *C, int64_t *inner) {
    const nl_var *x = nl_in(f, 0);
    int a;
    if (nl_norm_axis("axis", nl_arg_int(f, SCE_AXIS), x->ndim, &a)) return -1;
    *outer = 1; *inner = 1;
    for (int d = 0; d < a; d++) *outer *= x->shape[d];
    for (int d = a + 1; d < x->ndim; d++) *inner *= x->shape[d];
    *C = x->shape[a];
    return 0;
}

static int sce_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0), *t = nl_in(f, 1);
    char s1[160], s2[160], s3[160];
    if (x->ndim == 0) return nl_error("input 'x' is 0-d; it needs a class axis");
    int a;
    if (nl_norm_axis("axis", nl_arg_int(f, SCE_AXIS), x->ndim, &a)) return -1;
    int64_t want[NL_MAX_NDIM];
    for (int d = 0; d < x->ndim; d++) want[d] = d == a ? 1 : x->shape[d];
    bool ok = t->ndim == x->ndim;
    for (int d = 0; ok && d < x->ndim; d++) ok = t->shape[d] == want[d];
    if (!ok)
        return nl_error("input 'target' has shape %s, expected %s (x's shape %s with 1 on the class axis %d)",
                        nl_shape_str(s1, t->ndim, t->shape), nl_shape_str(s2, x->ndim, want),
                        nl_shape_str(s3, x->ndim, x->shape), a + 1);
    if (x->shape[a] == 0) return nl_error("input 'x' has no classes (size 0 on axis %d)", a + 1);
    nl_set_out_shape(f, 0, x->ndim, want);
    return 0;
}

/* Checks one label (a float class id) against 0..C-1; pos is 0-based in target. */
static int sce_label(float l, int64_t C, int64_t pos, int64_t *out) {
    if (!(l >= 0.0f && l <= (float)(C - 1)))
        return nl_error("label %g at position %lld is out of range 0..%lld", (double)l, (long long)(pos + 1),
                        (long long)(C - 1));
    if (l != floorf(l))
        return nl_error("label %g at position %lld is out of range 0..%lld (labels are integer class ids)",
                        (double)l, (long long)(pos + 1), (long long)(C - 1));
    *out = (int64_t)l;
    return 0;
}

/* Checks every label first, so that the kernels below cannot fail half-way. */
static int sce_check_labels(const float *t, int64_t n, int64_t C) {
    for (int64_t pos = 0; pos < n; pos++) {
        int64_t label;
        if (sce_label(t[pos], C, pos, &label)) return -1;
    }
    return 0;
}

typedef struct sce_ctx {
    const float *x, *t, *dy;
    float *y, *lse, *dx;
    float *e;            /* outer * C scratch for few classes */
    int64_t C;
    bool accum;
} sce_ctx;

enum { SCE_FEW = 32 };   /* up to this many classes, exp runs over whole blocks of rows */

/* exp of e[0..n) in place: one long vector loop */
static inline void sce_exp_inplace(float *restrict e, int64_t n) {
    for (int64_t i = 0; i < n; i++) e[i] = nl_vexpf(e[i]);
}

/* inner == 1 (classes contiguous): rows [o0, o1) of x (outer, C) -> lse, y */
static NL_SIMD_CLONES void sce_fwd_rows(int64_t o0, int64_t o1, void *vc) {
    const sce_ctx *c = vc;
    const int64_t C = c->C;
    if (C <= SCE_FEW) {   /* few classes: shift each row by its max, exp all rows at once */
        float *restrict e = c->e + o0 * C;
        for (int64_t o = o0; o < o1; o++) {
            const float *restrict xo = c->x + o * C;
            float m = -INFINITY;
            for (int64_t k = 0; k < C; k++) m = xo[k] > m ? xo[k] : m;
            if (m == -INFINITY) m = 0;                   /* all -inf: avoid inf - inf */
            c->lse[o] = m;
            for (int64_t k = 0; k < C; k++) e[(o - o0) * C + k] = xo[k] - m;
        }
        sce_exp_inplace(e, (o1 - o0) * C);
        for (int64_t o = o0; o < o1; o++) {
            float s = 0.0f;
            for (int64_t k = 0; k < C; k++) s += e[(o - o0) * C + k];
            const float lse = c->lse[o] + logf(s);
            c->lse[o] = lse;
            c->y[o] = lse - c->x[o * C + (int64_t)c->t[o]];
        }
        return;
    }
    for (int64_t o = o0; o < o1; o++) {
        const float *restrict xo = c->x + o * C;
        float m = -INFINITY;
        for (int64_t k = 0; k < C; k++) m = xo[k] > m ? xo[k] : m;
        if (m == -INFINITY) m = 0;                       /* all -inf: avoid inf - inf */
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int64_t k = 0; k < C; k++) s += nl_vexpf(xo[k] - m);
        const float lse = m + logf(s);
        c->lse[o] = lse;
        c->y[o] = lse - xo[(int64_t)c->t[o]];
    }
}

/* inner == 1: dx (outer, C) (+)= dy * (softmax(x) - onehot(label)) for rows [o0, o1) */
static NL_SIMD_CLONES void sce_bwd_rows(int64_t o0, int64_t o1, void *vc) {
    const sce_ctx *c = vc;
    const int64_t C = c->C;
    if (C <= SCE_FEW) {
        float *restrict e = c->e + o0 * C;
        for (int64_t o = o0; o < o1; o++)
            for (int64_t k = 0; k < C; k++) e[(o - o0) * C + k] = c->x[o * C + k] - c->lse[o];
        sce_exp_inplace(e, (o1 - o0) * C);
        for (int64_t o = o0; o < o1; o++) {
            float *restrict d = c->dx + o * C;
            const float g = c->dy[o];
            const float *restrict eo = e + (o - o0) * C;
            if (c->accum) for (int64_t k = 0; k < C; k++) d[k] += g * eo[k];
            else for (int64_t k = 0; k < C; k++) d[k] = g * eo[k];
            d[(int64_t)c->t[o]] -= g;
        }
        return;
    }
    for (int64_t o = o0; o < o1; o++) {
        const float *restrict xo = c->x + o * C;
        float *restrict d = c->dx + o * C;
        const float g = c->dy[o], lse = c->lse[o];
        if (c->accum)
            for (int64_t k = 0; k < C; k++) d[k] += g * nl_vexpf(xo[k] - lse);
        else
            for (int64_t k = 0; k < C; k++) d[k] = g * nl_vexpf(xo[k] - lse);
        d[(int64_t)c->t[o]] -= g;
    }
}

/* x: (outer, C, inner); target: (outer, 1, inner); y: (outer, 1, inner) = lse - x[label];
 * keeps lse = log(sum_c exp(x)) per (outer, inner) in scratch 0 for backward */
static int sce_forward(nl_func *f) {
    int64_t outer, C, inner;
    if (sce_dims(f, &outer, &C, &inner)) return -1;
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(const float *, t, nl_in_data(f, 1));
    NL_PTR(float *, y, nl_out_data(f, 0));
    NL_PTR(float *, lse, nl_func_scratch(f, 0, outer * inner + 1));
    if (sce_check_labels(t, outer * inner, C)) return -1;
    if (inner == 1) {
        sce_ctx c = {.x = x, .t = t, .y = y, .lse = lse, .C = C};
        if (C <= SCE_FEW && !(c.e = nl_func_scratch(f, 2, outer * C + 1))) return -1;
        nl_parallel_for(outer, 8 * C, sce_fwd_rows, &c);
        return 0;
    }
    NL_PTR(float *, sum, nl_func_scratch(f, 1, inner + 1));
    for (int64_t o = 0; o < outer; o++) {
        const float *xo = x + o * C * inner;
        float *mx = lse + o * inner;
        for (int64_t i = 0; i < inner; i++) { mx[i] = -INFINITY; sum[i] = 0; }
        for (int64_t c = 0; c < C; c++)
            for (int64_t i = 0; i < inner; i++)
                if (xo[c * inner + i] > mx[i]) mx[i] = xo[c * inner + i];
        for (int64_t i = 0; i < inner; i++)
            if (mx[i] == -INFINITY) mx[i] = 0;
        for (int64_t c = 0; c < C; c++)
            for (int64_t i = 0; i < inner; i++) sum[i] += nl_vexpf(xo[c * inner + i] - mx[i]);
        for (int64_t i = 0; i < inner; i++) {
            const int64_t pos = o * inner + i;
            mx[i] += logf(sum[i]);                       /* now lse */
            y[pos] = mx[i] - xo[(int64_t)t[pos] * inner + i];
        }
    }
    return 0;
}

/* dy: (outer, 1, inner); dx: (outer, C, inner) = dy * (softmax(x) - onehot(label)) */
static int sce_backward(nl_func *f, const bool *prop, const bool *accum) {
    int64_t outer, C, inner;
    if (sce_dims(f, &outer, &C, &inner)) return -1;
    if (prop[0]) {
        NL_PTR(const float *, x, nl_in_data(f, 0));
        NL_PTR(const float *, t, nl_in_data(f, 1));
        NL_PTR(const float *, dy, nl_out_grad(f, 0));
        NL_PTR(float *, dx, nl_in_grad(f, 0, accum[0]));
        NL_PTR(float *, lse, nl_func_scratch(f, 0, outer * inner + 1));
        if (sce_check_labels(t, outer * inner, C)) return -1;
        if (inner == 1) {
            sce_ctx c = {.x = x, .t = t, .dy = dy, .lse = lse, .dx = dx, .C = C, .accum = accum[0]};
            if (C <= SCE_FEW && !(c.e = nl_func_scratch(f, 2, outer * C + 1))) return -1;
            nl_parallel_for(outer, 8 * C, sce_bwd_rows, &c);
        } else {
            for (int64_t o = 0; o < outer; o++) {
                const float *xo = x + o * C * inner;
                float *dxo = dx + o * C * inner;
                for (int64_t c = 0; c < C; c++)
                    for (int64_t i = 0; i < inner; i++) {
                        const int64_t k = c * inner + i, pos = o * inner + i;
                        float g = dy[pos] * nl_vexpf(xo[k] - lse[pos]);
                        if (accum[0]) dxo[k] += g;
                        else dxo[k] = g;
                    }
                for (int64_t i = 0; i < inner; i++) {
                    const int64_t pos = o * inner + i;
                    dxo[(int64_t)t[pos] * inner + i] -= dy[pos];
                }
            }
        }
    }
    if (prop[1] && !accum[1]) {   /* labels get no gradient */
        NL_PTR(float *, dt, nl_in_grad(f, 1, false));
        memset(dt, 0, (size_t)nl_in(f, 1)->size * sizeof(float));
    }
    return 0;
}

const nl_fdef nl_fdef_softmax_cross_entropy = {
    .name = "softmax_cross_entropy",
    .doc = "y = -log(softmax(x)[target]) along axis (default -1); target: x's shape with 1 on the axis, "
           "holding 0-based class ids 0..C-1 (as floats); not averaged",
    .in_names = "x,target", .n_in = 2, .n_out = 1,
    .n_args = 1, .args = sce_args,
    .setup = sce_setup, .forward = sce_forward, .backward = sce_backward,
    .grad_in_data = 3, .grad_out_data = 0,
};

/* ---- squared_error --------------------------------------------------------------- */

static int se_setup(nl_func *f) {
    const nl_var *a = nl_in(f, 0), *b = nl_in(f, 1);
    char s1[160], s2[160];
    if (!nl_same_shape(a, b))
        return nl_error("inputs 'x0' %s and 'x1' %s must have the same shape",
                        nl_shape_str(s1, a->ndim, a->shape), nl_shape_str(s2, b->ndim, b->shape));
    nl_set_out_shape(f, 0, a->ndim, a->shape);
    return 0;
}

/* x0, x1, y: any shape, all the same; y = (x0 - x1)^2 */
static int se_forward(nl_func *f) {
    NL_PTR(const float *, a, nl_in_data(f, 0));
    NL_PTR(const float *, b, nl_in_data(f, 1));
    NL_PTR(float *, y, nl_out_data(f, 0));
    const int64_t n = nl_in(f, 0)->size;
    for (int64_t i = 0; i < n; i++) { float d = a[i] - b[i]; y[i] = d * d; }
    return 0;
}

/* dx0 = 2 (x0 - x1) dy, dx1 = -2 (x0 - x1) dy; x0 before x1 (the graph sets accum on the
 * second of two identical inputs) */
static int se_backward(nl_func *f, const bool *prop, const bool *accum) {
    NL_PTR(const float *, a, nl_in_data(f, 0));
    NL_PTR(const float *, b, nl_in_data(f, 1));
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    const int64_t n = nl_in(f, 0)->size;
    for (int k = 0; k < 2; k++) {
        if (!prop[k]) continue;
        const float s = k == 0 ? 2.0f : -2.0f;
        NL_PTR(float *, dx, nl_in_grad(f, k, accum[k]));
        if (accum[k]) for (int64_t i = 0; i < n; i++) dx[i] += s * (a[i] - b[i]) * dy[i];
        else for (int64_t i = 0; i < n; i++) dx[i] = s * (a[i] - b[i]) * dy[i];
    }
    return 0;
}

const nl_fdef nl_fdef_squared_error = {
    .name = "squared_error",
    .doc = "y = (x0 - x1)^2 element-wise (same shapes); not averaged",
    .in_names = "x0,x1", .n_in = 2, .n_out = 1,
    .setup = se_setup, .forward = se_forward, .backward = se_backward,
    .grad_in_data = 3, .grad_out_data = 0,
};
