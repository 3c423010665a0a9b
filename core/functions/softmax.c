/*
 * softmax.c - softmax and log_softmax along one axis (Lua 1-based, default -1), computed
 * stably (the maximum along the axis is subtracted first). x is viewed as
 * (outer, C, inner) with C the softmax axis; the kernels walk one (C, inner) block at a
 * time with per-inner scratch rows, so every axis is read contiguously.
 */
#include "../src/function.h"
#include "vmath.h"
#include <math.h>

enum { SM_AXIS };
static const nl_argdef softmax_args[] = {{"axis", NL_ARG_AXIS, "-1", NULL}};

/* x: (outer, C, inner) around axis `axis` */
static int softmax_dims(nl_func *f, int64_t *outer, int64_t *C, int64_t *inner) {
    const nl_var *x = nl_in(f, 0);
    int a;
    if (nl_norm_axis("axis", nl_arg_int(f, SM_AXIS), x->ndim, &a)) return -1;
    *outer = 1; *inner = 1;
    for (int d = 0; d < a; d++) *outer *= x->shape[d];
    for (int d = a + 1; d < x->ndim; d++) *inner *= x->shape[d];
    *C = x->shape[a];
    return 0;
}

static int softmax_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0);
    if (x->ndim == 0) return nl_error("input 'x' is 0-d; softmax needs at least one axis");
    int64_t o, c, i;
    if (softmax_dims(f, &o, &c, &i)) return -1;
    nl_set_out_shape(f, 0, x->ndim, x->shape);
    return 0;
}

typedef struct sm_ctx {
    const float *x, *y, *dy;
    float *out;
    int64_t C;
    int log;
    bool accum;
} sm_ctx;

/* inner == 1 (the axis contiguous): rows [o0, o1) of x (outer, C) -> y */
static NL_SIMD_CLONES void sm_fwd_rows(int64_t o0, int64_t o1, void *vc) {
    const sm_ctx *c = vc;
    const int64_t C = c->C;
    for (int64_t o = o0; o < o1; o++) {
        const float *restrict xo = c->x + o * C;
        float *restrict yo = c->out + o * C;
        float m = -INFINITY;
        for (int64_t k = 0; k < C; k++) m = xo[k] > m ? xo[k] : m;
        if (m == -INFINITY) m = 0;                       /* all -inf: avoid inf - inf */
        float s = 0.0f;
        if (c->log) {
#pragma omp simd reduction(+ : s)
            for (int64_t k = 0; k < C; k++) s += nl_vexpf(xo[k] - m);
            const float lse = m + logf(s);
            for (int64_t k = 0; k < C; k++) yo[k] = xo[k] - lse;
        } else {
            for (int64_t k = 0; k < C; k++) yo[k] = nl_vexpf(xo[k] - m);
#pragma omp simd reduction(+ : s)
            for (int64_t k = 0; k < C; k++) s += yo[k];
            const float inv = 1.0f / s;
            for (int64_t k = 0; k < C; k++) yo[k] *= inv;
        }
    }
}

/* inner == 1: softmax dx = y * (dy - sum dy*y); log_softmax dx = dy - exp(y) * sum dy */
static NL_SIMD_CLONES void sm_bwd_rows(int64_t o0, int64_t o1, void *vc) {
    const sm_ctx *c = vc;
    const int64_t C = c->C;
    for (int64_t o = o0; o < o1; o++) {
        const float *restrict yo = c->y + o * C, *restrict go = c->dy + o * C;
        float *restrict d = c->out + o * C;
        float s = 0.0f;
        if (c->log) {
#pragma omp simd reduction(+ : s)
            for (int64_t k = 0; k < C; k++) s += go[k];
            if (c->accum) for (int64_t k = 0; k < C; k++) d[k] += go[k] - nl_vexpf(yo[k]) * s;
            else for (int64_t k = 0; k < C; k++) d[k] = go[k] - nl_vexpf(yo[k]) * s;
        } else {
#pragma omp simd reduction(+ : s)
            for (int64_t k = 0; k < C; k++) s += go[k] * yo[k];
            if (c->accum) for (int64_t k = 0; k < C; k++) d[k] += yo[k] * (go[k] - s);
            else for (int64_t k = 0; k < C; k++) d[k] = yo[k] * (go[k] - s);
        }
    }
}

/* x: (outer, C, inner); y: (outer, C, inner).
 * log_softmax = 0: y = exp(x - m) / sum_c exp(x - m); 1: y = x - m - log(sum_c exp(x - m)). */
static int softmax_forward_common(nl_func *f, int log_softmax) {
    int64_t outer, C, inner;
    if (softmax_dims(f, &outer, &C, &inner)) return -1;
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(float *, y, nl_out_data(f, 0));
    if (inner == 1) {
        sm_ctx c = {.x = x, .out = y, .C = C, .log = log_softmax};
        nl_parallel_for(outer, 8 * C, sm_fwd_rows, &c);
        return 0;
    }
    NL_PTR(float *, ws, nl_func_scratch(f, 0, 2 * inner + 1));
    float *mx = ws, *sum = ws + inner;
    for (int64_t o = 0; o < outer; o++) {
        const float *xo = x + o * C * inner;
        float *yo = y + o * C * inner;
        for (int64_t i = 0; i < inner; i++) { mx[i] = -INFINITY; sum[i] = 0; }
        for (int64_t c = 0; c < C; c++)
            for (int64_t i = 0; i < inner; i++)
                if (xo[c * inner + i] > mx[i]) mx[i] = xo[c * inner + i];
        for (int64_t i = 0; i < inner; i++)
            if (mx[i] == -INFINITY) mx[i] = 0;   /* all -inf: avoid inf - inf */
        for (int64_t c = 0; c < C; c++)
            for (int64_t i = 0; i < inner; i++) {
                float e = nl_vexpf(xo[c * inner + i] - mx[i]);
                if (!log_softmax) yo[c * inner + i] = e;
                sum[i] += e;
            }
        if (log_softmax) {
            for (int64_t i = 0; i < inner; i++) sum[i] = mx[i] + logf(sum[i]);   /* log-sum-exp */
            for (int64_t c = 0; c < C; c++)
                for (int64_t i = 0; i < inner; i++) yo[c * inner + i] = xo[c * inner + i] - sum[i];
        } else {
            for (int64_t i = 0; i < inner; i++) sum[i] = 1.0f / sum[i];
            for (int64_t c = 0; c < C; c++)
                for (int64_t i = 0; i < inner; i++) yo[c * inner + i] *= sum[i];
        }
    }
    return 0;
}

/* y, dy: (outer, C, inner); dx: (outer, C, inner).
 * softmax: dx = y * (dy - sum_c dy * y); log_softmax: dx = dy - exp(y) * sum_c dy. */
static int softmax_backward_common(nl_func *f, const bool *prop, const bool *accum, int log_softmax) {
    if (!prop[0]) return 0;
    int64_t outer, C, inner;
    if (softmax_dims(f, &outer, &C, &inner)) return -1;
    NL_PTR(const float *, y, nl_out_data_r(f, 0));
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    NL_PTR(float *, dx, nl_in_grad(f, 0, accum[0]));
    if (inner == 1) {
        sm_ctx c = {.y = y, .dy = dy, .out = dx, .C = C, .log = log_softmax, .accum = accum[0]};
        nl_parallel_for(outer, 8 * C, sm_bwd_rows, &c);
        return 0;
    }
    NL_PTR(float *, ws, nl_func_scratch(f, 1, inner + 1));
    float *s = ws;
    for (int64_t o = 0; o < outer; o++) {
        const int64_t base = o * C * inner;
        const float *yo = y + base, *go = dy + base;
        float *dxo = dx + base;
        for (int64_t i = 0; i < inner; i++) s[i] = 0;
        if (log_softmax) {
            for (int64_t c = 0; c < C; c++)
                for (int64_t i = 0; i < inner; i++) s[i] += go[c * inner + i];
        } else {
            for (int64_t c = 0; c < C; c++)
                for (int64_t i = 0; i < inner; i++) s[i] += go[c * inner + i] * yo[c * inner + i];
        }
        for (int64_t c = 0; c < C; c++)
            for (int64_t i = 0; i < inner; i++) {
                const int64_t k = c * inner + i;
                float g = log_softmax ? go[k] - nl_vexpf(yo[k]) * s[i] : yo[k] * (go[k] - s[i]);
                if (accum[0]) dxo[k] += g;
                else dxo[k] = g;
            }
    }
    return 0;
}

static int softmax_forward(nl_func *f) { return softmax_forward_common(f, 0); }
static int softmax_backward(nl_func *f, const bool *prop, const bool *accum) {
    return softmax_backward_common(f, prop, accum, 0);
}
static int log_softmax_forward(nl_func *f) { return softmax_forward_common(f, 1); }
static int log_softmax_backward(nl_func *f, const bool *prop, const bool *accum) {
    return softmax_backward_common(f, prop, accum, 1);
}

const nl_fdef nl_fdef_softmax = {
    .name = "softmax",
    .doc = "y = exp(x) / sum(exp(x)) along axis (default -1, the last), computed stably",
    .in_names = "x", .n_in = 1, .n_out = 1,
    .n_args = 1, .args = softmax_args,
    .setup = softmax_setup, .forward = softmax_forward, .backward = softmax_backward,
    .grad_in_data = 0, .grad_out_data = 1,
};

const nl_fdef nl_fdef_log_softmax = {
    .name = "log_softmax",
    .doc = "y = x - log(sum(exp(x))) along axis (default -1, the last), computed stably",
    .in_names = "x", .n_in = 1, .n_out = 1,
    .n_args = 1, .args = softmax_args,
    .setup = softmax_setup, .forward = log_softmax_forward, .backward = log_softmax_backward,
    .grad_in_data = 0, .grad_out_data = 1,
};
