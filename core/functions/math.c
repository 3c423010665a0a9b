/*
 * math.c - element-wise math: sign, abs, exp, log, sin, cos, tan, asin, acos, atan,
 * sinh, cosh, round, ceil, floor, erf (x: any shape; y: the same shape), atan2 (numpy
 * broadcasting of size-1 dims) and the variadic add_n, mul_n (inputs of one shape).
 * The math is in elementwise_math.h, shared with the CUDA kernels. sign, round, ceil and
 * floor pass the gradient straight through (dx = dy), as NNabla does.
 */
#include "elementwise.h"

static const nl_argdef no_args[1] = {{"", NL_ARG_INT, "0", NULL}};
static const nl_argdef sign_args[] = {{"alpha", NL_ARG_FLOAT, "1.0", NULL}};

NL_UNARY_FUNCTION(sign, "y = 1 if x > 0, -1 if x < 0, alpha if x == 0; backward is straight-through (dx = dy)",
                  sign_args, 1, 0, 0);
NL_UNARY_FUNCTION(abs, "y = |x|", no_args, 0, 1, 0);
NL_UNARY_FUNCTION(exp, "y = exp(x)", no_args, 0, 0, 1);
NL_UNARY_FUNCTION(log, "y = log(x) (natural)", no_args, 0, 1, 0);
NL_UNARY_FUNCTION(sin, "y = sin(x)", no_args, 0, 1, 0);
NL_UNARY_FUNCTION(cos, "y = cos(x)", no_args, 0, 1, 0);
NL_UNARY_FUNCTION(tan, "y = tan(x)", no_args, 0, 0, 1);
NL_UNARY_FUNCTION(asin, "y = asin(x)", no_args, 0, 1, 0);
NL_UNARY_FUNCTION(acos, "y = acos(x)", no_args, 0, 1, 0);
NL_UNARY_FUNCTION(atan, "y = atan(x)", no_args, 0, 1, 0);
NL_UNARY_FUNCTION(sinh, "y = sinh(x)", no_args, 0, 1, 0);
NL_UNARY_FUNCTION(cosh, "y = cosh(x)", no_args, 0, 1, 0);
NL_UNARY_FUNCTION(round, "y = round(x) (halves away from zero); backward is straight-through", no_args, 0, 0, 0);
NL_UNARY_FUNCTION(ceil, "y = ceil(x); backward is straight-through", no_args, 0, 0, 0);
NL_UNARY_FUNCTION(floor, "y = floor(x); backward is straight-through", no_args, 0, 0, 0);
NL_UNARY_FUNCTION(erf, "y = erf(x)", no_args, 0, 1, 0);

NL_BINARY_FUNCTION(atan2, "y = atan2(x0, x1) = atan(x0 / x1) in the right quadrant (size-1 dimensions broadcast)", 3, 0);

/* ---- add_n, mul_n: x_1 ... x_n of one shape; y: that shape ---- */

static int nary_setup(nl_func *f) {
    const nl_var *x0 = nl_in(f, 0);
    for (int i = 1; i < f->n_in; i++) {
        if (!nl_same_shape(x0, nl_in(f, i))) {
            char s1[160], s2[160];
            return nl_error("input %d has shape %s but input 1 has %s (all inputs must have one shape)",
                            i + 1, nl_shape_str(s1, nl_in(f, i)->ndim, nl_in(f, i)->shape),
                            nl_shape_str(s2, x0->ndim, x0->shape));
        }
    }
    nl_set_out_shape(f, 0, x0->ndim, x0->shape);
    return 0;
}

/* Whether input i's grad buffer is also an earlier propagated input's (add_n(x, x)): it must
 * then add to what was written a moment ago. */
static bool grad_written_before(nl_func *f, const bool *prop, int i) {
    for (int k = 0; k < i; k++)
        if (prop[k] && nl_in(f, k)->grad == nl_in(f, i)->grad) return true;
    return false;
}

static int add_n_forward(nl_func *f) {
    NL_PTR(float *, y, nl_out_data(f, 0));
    const int64_t n = nl_in(f, 0)->size;
    for (int i = 0; i < f->n_in; i++) {
        NL_PTR(const float *, x, nl_in_data(f, i));
        if (i == 0) for (int64_t j = 0; j < n; j++) y[j] = x[j];
        else for (int64_t j = 0; j < n; j++) y[j] = nl_add2_fwd(y[j], x[j]);
    }
    return 0;
}

/* dx_i = dy */
static int add_n_backward(nl_func *f, const bool *prop, const bool *accum) {
    const int64_t n = nl_in(f, 0)->size;
    const float *dy = NULL;
    for (int i = 0; i < f->n_in; i++) {
        if (!prop[i]) continue;
        if (!dy) { dy = nl_out_grad(f, 0); if (!dy) return -1; }
        bool acc = accum[i] || grad_written_before(f, prop, i);
        NL_PTR(float *, dx, nl_in_grad(f, i, acc));
        if (acc) for (int64_t j = 0; j < n; j++) dx[j] += dy[j];
        else memcpy(dx, dy, (size_t)n * sizeof(float));
    }
    return 0;
}

static int mul_n_forward(nl_func *f) {
    NL_PTR(float *, y, nl_out_data(f, 0));
    const int64_t n = nl_in(f, 0)->size;
    for (int i = 0; i < f->n_in; i++) {
        NL_PTR(const float *, x, nl_in_data(f, i));
        if (i == 0) for (int64_t j = 0; j < n; j++) y[j] = x[j];
        else for (int64_t j = 0; j < n; j++) y[j] = nl_mul2_fwd(y[j], x[j]);
    }
    return 0;
}

/* dx_i = dy * prod_{k != i} x_k (no division, so zeros in the inputs are fine) */
static int mul_n_backward(nl_func *f, const bool *prop, const bool *accum) {
    const int64_t n = nl_in(f, 0)->size;
    const int m = f->n_in;
    const float *xs[NL_MAX_INPUTS];
    bool any = false;
    for (int i = 0; i < m; i++) any |= prop[i];
    if (!any) return 0;
    for (int k = 0; k < m; k++) { xs[k] = nl_in_data(f, k); if (!xs[k]) return -1; }
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    for (int i = 0; i < m; i++) {
        if (!prop[i]) continue;
        bool acc = accum[i] || grad_written_before(f, prop, i);
        NL_PTR(float *, dx, nl_in_grad(f, i, acc));
        for (int64_t j = 0; j < n; j++) {
            float g = dy[j];
            for (int k = 0; k < m; k++)
                if (k != i) g *= xs[k][j];
            if (acc) dx[j] += g;
            else dx[j] = g;
        }
    }
    return 0;
}

const nl_fdef nl_fdef_add_n = {
    .name = "add_n", .doc = "y = x1 + x2 + ... + xn (inputs of one shape): F.add_n(a, b, c) or F.add_n{a, b, c}",
    .in_names = "x", .n_in = 1, .variadic = true, .n_out = 1,
    .setup = nary_setup, .forward = add_n_forward, .backward = add_n_backward,
    .grad_in_data = 0, .grad_out_data = 0,
};

const nl_fdef nl_fdef_mul_n = {
    .name = "mul_n", .doc = "y = x1 * x2 * ... * xn (inputs of one shape): F.mul_n(a, b, c) or F.mul_n{a, b, c}",
    .in_names = "x", .n_in = 1, .variadic = true, .n_out = 1,
    .setup = nary_setup, .forward = mul_n_forward, .backward = mul_n_backward,
    .grad_in_data = 0xffffffffu, .grad_out_data = 0,
};
