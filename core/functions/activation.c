/*
 * activation.c - activations: identity, tanh, sigmoid, relu and the catalogue's
 * leaky_relu, elu, selu, celu, gelu, swish, mish, softplus, softsign, relu6,
 * hard_sigmoid, hard_tanh, log_sigmoid, prelu. Element-wise ones: x: any shape; y: the
 * same shape. The math is in elementwise_math.h (shared with the CUDA kernels).
 */
#include "elementwise.h"

static const nl_argdef no_args[1] = {{"", NL_ARG_INT, "0", NULL}};
NL_UNARY_FUNCTION(identity, "y = x", no_args, 0, 0, 0);
NL_UNARY_FUNCTION(tanh, "y = tanh(x)", no_args, 0, 0, 1);
NL_UNARY_FUNCTION(sigmoid, "y = 1 / (1 + exp(-x))", no_args, 0, 0, 1);
NL_UNARY_FUNCTION(relu, "y = max(0, x)", no_args, 0, 1, 0);

/* ---- catalogue activations: x: any shape; y: the same shape ---- */
static const nl_argdef alpha_01[] = {{"alpha", NL_ARG_FLOAT, "0.1", NULL}};
static const nl_argdef alpha_1[] = {{"alpha", NL_ARG_FLOAT, "1.0", NULL}};
static const nl_argdef beta_1[] = {{"beta", NL_ARG_FLOAT, "1.0", NULL}};
NL_UNARY_FUNCTION(leaky_relu, "y = x if x > 0 else alpha * x", alpha_01, 1, 1, 0);
NL_UNARY_FUNCTION(elu, "y = x if x >= 0 else alpha * (exp(x) - 1)", alpha_1, 1, 1, 0);
NL_UNARY_FUNCTION(gelu, "y = x / 2 * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x^3))) (NNabla's tanh approximation)",
                  no_args, 0, 1, 0);
NL_UNARY_FUNCTION(swish, "y = x / (1 + exp(-x))", no_args, 0, 1, 1);
NL_UNARY_FUNCTION(mish, "y = x * tanh(log(1 + exp(x)))", no_args, 0, 1, 0);
NL_UNARY_FUNCTION(softplus, "y = log(1 + exp(beta * x)) / beta", beta_1, 1, 1, 0);
NL_UNARY_FUNCTION(softsign, "y = x / (1 + |x|)", no_args, 0, 1, 0);
NL_UNARY_FUNCTION(relu6, "y = min(max(x, 0), 6)", no_args, 0, 1, 0);
NL_UNARY_FUNCTION(hard_sigmoid, "y = 0 if x < -2.5, 1 if x > 2.5, else 0.2 x + 0.5", no_args, 0, 1, 0);
NL_UNARY_FUNCTION(hard_tanh, "y = -1 if x < -1, 1 if x > 1, else x", no_args, 0, 1, 0);
NL_UNARY_FUNCTION(log_sigmoid, "y = log(1 / (1 + exp(-x))), computed stably", no_args, 0, 1, 0);

/* ---- selu: two arguments (scale, alpha) ---- */
enum { SELU_SCALE, SELU_ALPHA };
static const nl_argdef selu_args[] = {
    {"scale", NL_ARG_FLOAT, "1.05070098735548", NULL},
    {"alpha", NL_ARG_FLOAT, "1.673263242354377", NULL},
};

/* x: any shape; y: the same shape. y = scale * (x if x > 0 else alpha * (exp(x) - 1)) */
static int selu_forward(nl_func *f) {
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(float *, y, nl_out_data(f, 0));
    const float s = (float)nl_arg_float(f, SELU_SCALE), a = (float)nl_arg_float(f, SELU_ALPHA);
    const int64_t n = nl_in(f, 0)->size;
    for (int64_t i = 0; i < n; i++) y[i] = nl_selu_fwd(x[i], s, a);
    return 0;
}

static int selu_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    NL_PTR(float *, dx, nl_in_grad(f, 0, accum[0]));
    const float s = (float)nl_arg_float(f, SELU_SCALE), a = (float)nl_arg_float(f, SELU_ALPHA);
    const int64_t n = nl_in(f, 0)->size;
    if (accum[0]) for (int64_t i = 0; i < n; i++) dx[i] += nl_selu_bwd(x[i], dy[i], s, a);
    else for (int64_t i = 0; i < n; i++) dx[i] = nl_selu_bwd(x[i], dy[i], s, a);
    return 0;
}

const nl_fdef nl_fdef_selu = {
    .name = "selu", .doc = "y = scale * (x if x > 0 else alpha * (exp(x) - 1))",
    .in_names = "x", .n_in = 1, .n_out = 1, .n_args = 2, .args = selu_args,
    .setup = nl_unary_setup, .forward = selu_forward, .backward = selu_backward,
    .grad_in_data = 1, .grad_out_data = 0,
};

/* ---- celu: elu(x) and elu(-x) concatenated along axis ---- */
enum { CELU_ALPHA, CELU_AXIS };
static const nl_argdef celu_args[] = {
    {"alpha", NL_ARG_FLOAT, "1.0", NULL},
    {"axis", NL_ARG_AXIS, "2", NULL},
};

/* x viewed as (outer, inner) split before `axis`: outer = prod(shape[:axis]),
 * inner = prod(shape[axis:]); y: (outer, 2, inner). */
static int celu_dims(nl_func *f, int64_t *outer, int64_t *inner) {
    const nl_var *x = nl_in(f, 0);
    int a;
    if (nl_norm_axis("axis", nl_arg_int(f, CELU_AXIS), x->ndim, &a)) return -1;
    *outer = 1; *inner = 1;
    for (int d = 0; d < a; d++) *outer *= x->shape[d];
    for (int d = a; d < x->ndim; d++) *inner *= x->shape[d];
    return 0;
}

static int celu_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0);
    if (x->ndim == 0) return nl_error("input 'x' is 0-d; celu concatenates along an axis");
    int a;
    if (nl_norm_axis("axis", nl_arg_int(f, CELU_AXIS), x->ndim, &a)) return -1;
    int64_t shape[NL_MAX_NDIM];
    for (int d = 0; d < x->ndim; d++) shape[d] = x->shape[d];
    shape[a] *= 2;
    nl_set_out_shape(f, 0, x->ndim, shape);
    return 0;
}

static int celu_forward(nl_func *f) {
    int64_t outer, inner;
    if (celu_dims(f, &outer, &inner)) return -1;
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(float *, y, nl_out_data(f, 0));
    const float a = (float)nl_arg_float(f, CELU_ALPHA);
    for (int64_t o = 0; o < outer; o++) {
        const float *xo = x + o * inner;
        float *yp = y + 2 * o * inner, *yn = yp + inner;
        for (int64_t i = 0; i < inner; i++) {
            yp[i] = nl_celu_pos(xo[i], a);
            yn[i] = nl_celu_neg(xo[i], a);
        }
    }
    return 0;
}

static int celu_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    int64_t outer, inner;
    if (celu_dims(f, &outer, &inner)) return -1;
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    NL_PTR(float *, dx, nl_in_grad(f, 0, accum[0]));
    const float a = (float)nl_arg_float(f, CELU_ALPHA);
    for (int64_t o = 0; o < outer; o++) {
        const float *xo = x + o * inner, *gp = dy + 2 * o * inner, *gn = gp + inner;
        float *dxo = dx + o * inner;
        if (accum[0]) for (int64_t i = 0; i < inner; i++) dxo[i] += nl_celu_bwd(xo[i], a, gp[i], gn[i]);
        else for (int64_t i = 0; i < inner; i++) dxo[i] = nl_celu_bwd(xo[i], a, gp[i], gn[i]);
    }
    return 0;
}

const nl_fdef nl_fdef_celu = {
    .name = "celu",
    .doc = "y = concatenate(elu(x, alpha), elu(-x, alpha)) along axis (default 2): that axis doubles",
    .in_names = "x", .n_in = 1, .n_out = 1, .n_args = 2, .args = celu_args,
    .setup = celu_setup, .forward = celu_forward, .backward = celu_backward,
    .grad_in_data = 1, .grad_out_data = 0,
};

/* ---- prelu: y = x if x >= 0 else w * x, w one slope or one per channel ---- */
enum { PRELU_BASE_AXIS };
static const nl_argdef prelu_args[] = {{"base_axis", NL_ARG_AXIS, "2", NULL}};

/* x0: (outer, C, inner) around base_axis; x1: {} / any shape of size 1 (one slope) or {C}.
 * Sets *C = 1 in single-slope mode. */
static int prelu_dims(nl_func *f, int64_t *outer, int64_t *C, int64_t *inner) {
    const nl_var *x = nl_in(f, 0), *w = nl_in(f, 1);
    int a;
    if (nl_norm_axis("base_axis", nl_arg_int(f, PRELU_BASE_AXIS), x->ndim, &a)) return -1;
    if (w->size == 1) {
        *outer = 1; *C = 1; *inner = x->size;
        return 0;
    }
    if (w->ndim != 1 || w->shape[0] != x->shape[a]) {
        char s1[160], s2[160];
        return nl_error("slope 'x1' has shape %s; it must hold one value or be {%lld} "
                        "(x0 %s has %lld channels on base_axis %d)",
                        nl_shape_str(s1, w->ndim, w->shape), (long long)x->shape[a],
                        nl_shape_str(s2, x->ndim, x->shape), (long long)x->shape[a], a + 1);
    }
    *outer = 1; *inner = 1;
    for (int d = 0; d < a; d++) *outer *= x->shape[d];
    for (int d = a + 1; d < x->ndim; d++) *inner *= x->shape[d];
    *C = x->shape[a];
    return 0;
}

static int prelu_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0);
    if (x->ndim == 0) return nl_error("input 'x0' is 0-d; prelu needs a channel axis");
    int64_t o, c, i;
    if (prelu_dims(f, &o, &c, &i)) return -1;
    nl_set_out_shape(f, 0, x->ndim, x->shape);
    return 0;
}

static int prelu_forward(nl_func *f) {
    int64_t outer, C, inner;
    if (prelu_dims(f, &outer, &C, &inner)) return -1;
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(const float *, w, nl_in_data(f, 1));
    NL_PTR(float *, y, nl_out_data(f, 0));
    for (int64_t o = 0; o < outer; o++)
        for (int64_t c = 0; c < C; c++) {
            const int64_t base = (o * C + c) * inner;
            const float wc = w[c];
            for (int64_t i = 0; i < inner; i++) y[base + i] = nl_prelu_fwd(x[base + i], wc);
        }
    return 0;
}

/* dx = dy if x >= 0 else w * dy; dw[c] = sum over the channel of dy * x where x < 0 */
static int prelu_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0] && !prop[1]) return 0;
    int64_t outer, C, inner;
    if (prelu_dims(f, &outer, &C, &inner)) return -1;
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(const float *, w, nl_in_data(f, 1));
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    if (prop[0]) {
        NL_PTR(float *, dx, nl_in_grad(f, 0, accum[0]));
        for (int64_t o = 0; o < outer; o++)
            for (int64_t c = 0; c < C; c++) {
                const int64_t base = (o * C + c) * inner;
                const float wc = w[c];
                if (accum[0])
                    for (int64_t i = 0; i < inner; i++) dx[base + i] += nl_prelu_bwd_x(x[base + i], wc, dy[base + i]);
                else
                    for (int64_t i = 0; i < inner; i++) dx[base + i] = nl_prelu_bwd_x(x[base + i], wc, dy[base + i]);
            }
    }
    if (prop[1]) {
        /* the same variable as x0 and x1 (prelu(x, x)): add to what was just written */
        bool acc = accum[1] || (prop[0] && nl_in(f, 0)->grad == nl_in(f, 1)->grad);
        NL_PTR(float *, dw, nl_in_grad(f, 1, acc));
        for (int64_t c = 0; c < C; c++) {
            double s = 0;
            for (int64_t o = 0; o < outer; o++) {
                const int64_t base = (o * C + c) * inner;
                for (int64_t i = 0; i < inner; i++) s += nl_prelu_bwd_w(x[base + i], dy[base + i]);
            }
            if (acc) dw[c] += (float)s;
            else dw[c] = (float)s;
        }
    }
    return 0;
}

const nl_fdef nl_fdef_prelu = {
    .name = "prelu",
    .doc = "y = x0 if x0 >= 0 else x1 * x0; slope x1 is one value or one per channel of base_axis (default 2)",
    .in_names = "x0,x1", .n_in = 2, .n_out = 1, .n_args = 1, .args = prelu_args,
    .setup = prelu_setup, .forward = prelu_forward, .backward = prelu_backward,
    .grad_in_data = 3, .grad_out_data = 0,
};
