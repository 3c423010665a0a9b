/*
 * loss_ext.c - the rest of NNabla's losses, element-wise and not averaged (wrap them in
 * F.mean), NNabla semantics:
 *   sigmoid_cross_entropy(x, target)      y = -(t log s(x) + (1 - t) log(1 - s(x))), computed
 *                                         stably as max(x, 0) - x t + log(1 + exp(-|x|));
 *                                         dx = dy (s(x) - t); the target gets no gradient
 *   binary_cross_entropy(x, target)       y = -(t log x + (1 - t) log(1 - x)), the logs of
 *                                         max(., FLT_MIN); x is a probability; both get gradients
 *   categorical_cross_entropy(x, target, axis=-1)
 *                                         y = -log max(x[target], FLT_MIN) along axis; target
 *                                         holds 0-based class ids (x's shape, 1 on the axis);
 *                                         a label outside 0..C-1 makes forward fail
 *   absolute_error(x0, x1)                y = |x0 - x1|
 *   huber_loss(x0, x1, delta=1)           d = x0 - x1; y = d^2 (|d| < delta),
 *                                         delta (2|d| - delta) otherwise
 *   epsilon_insensitive_loss(x0, x1, epsilon)
 *                                         y = |x0 - x1| - epsilon where that is > 0, else 0
 *   kl_multinomial(p, q, base_axis=2)     D = sum p (log(p + 1e-8) - log(q + 1e-8)) over the
 *                                         axes from base_axis on; D: p's shape up to
 *                                         base_axis - 1, then 1
 * Inputs of the binary losses have the same shape; the output has it too.
 * The per-element math of the element-wise losses is in elementwise_math.h (nl_sigce_*,
 * nl_bce_*, nl_abserr_*, nl_huber_*, nl_eil_*), shared with the CUDA kernels (cuda/losses.cu);
 * categorical_cross_entropy's and kl_multinomial's is in index_plans.h (nl_cce_*, nl_kl_*),
 * shared with cuda/indexing.cu.
 */
#include "labels.h"
#include "elementwise_math.h"
#include "index_plans.h"
#include <float.h>
#include <math.h>
#include <string.h>

static int same_shape_setup(nl_func *f) {
    const nl_var *a = nl_in(f, 0), *b = nl_in(f, 1);
    char s1[160], s2[160];
    if (!nl_same_shape(a, b)) {
        const char *n0 = f->def->in_names, *comma = strchr(n0, ',');
        return nl_error("inputs '%.*s' %s and '%s' %s must have the same shape", (int)(comma - n0), n0,
                        nl_shape_str(s1, a->ndim, a->shape), comma + 1, nl_shape_str(s2, b->ndim, b->shape));
    }
    nl_set_out_shape(f, 0, a->ndim, a->shape);
    return 0;
}

/* dst (+)= value, the accumulation rule in one place */
#define PUT(dst, acc, val) do { if (acc) (dst) += (val); else (dst) = (val); } while (0)

/* ---- sigmoid_cross_entropy --------------------------------------------------------- */

/* x, t, y: same shape */
static int sigce_forward(nl_func *f) {
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(const float *, t, nl_in_data(f, 1));
    NL_PTR(float *, y, nl_out_data(f, 0));
    const int64_t n = nl_in(f, 0)->size;
    for (int64_t i = 0; i < n; i++) y[i] = nl_sigce_fwd(x[i], t[i]);
    return 0;
}

/* dx = dy (sigmoid(x) - t); the target (labels) gets no gradient */
static int sigce_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (prop[0]) {
        NL_PTR(const float *, x, nl_in_data(f, 0));
        NL_PTR(const float *, t, nl_in_data(f, 1));
        NL_PTR(const float *, dy, nl_out_grad(f, 0));
        NL_PTR(float *, dx, nl_in_grad(f, 0, accum[0]));
        const int64_t n = nl_in(f, 0)->size;
        for (int64_t i = 0; i < n; i++) PUT(dx[i], accum[0], nl_sigce_bwd(x[i], t[i], dy[i]));
    }
    nl_no_grad_input(f, 1, prop, accum);
    return 0;
}

const nl_fdef nl_fdef_sigmoid_cross_entropy = {
    .name = "sigmoid_cross_entropy",
    .doc = "y = -(t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))) element-wise (same shapes), computed "
           "stably from the logits x; the target gets no gradient; not averaged",
    .in_names = "x,target", .n_in = 2, .n_out = 1,
    .setup = same_shape_setup, .forward = sigce_forward, .backward = sigce_backward,
    .grad_in_data = 3, .grad_out_data = 0,
};

/* ---- binary_cross_entropy ---------------------------------------------------------- */

/* x (probabilities), t, y: same shape */
static int bce_forward(nl_func *f) {
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(const float *, t, nl_in_data(f, 1));
    NL_PTR(float *, y, nl_out_data(f, 0));
    const int64_t n = nl_in(f, 0)->size;
    for (int64_t i = 0; i < n; i++) y[i] = nl_bce_fwd(x[i], t[i]);
    return 0;
}

/* dx = dy (x - t) / max(x (1 - x), FLT_MIN); dt = dy (log(1 - x) - log(x)) */
static int bce_backward(nl_func *f, const bool *prop, const bool *accum) {
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(const float *, t, nl_in_data(f, 1));
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    const int64_t n = nl_in(f, 0)->size;
    if (prop[0]) {
        NL_PTR(float *, dx, nl_in_grad(f, 0, accum[0]));
        for (int64_t i = 0; i < n; i++) PUT(dx[i], accum[0], nl_bce_bwd0(x[i], t[i], dy[i]));
    }
    if (prop[1]) {
        NL_PTR(float *, dt, nl_in_grad(f, 1, accum[1]));
        for (int64_t i = 0; i < n; i++) PUT(dt[i], accum[1], nl_bce_bwd1(x[i], t[i], dy[i]));
    }
    return 0;
}

const nl_fdef nl_fdef_binary_cross_entropy = {
    .name = "binary_cross_entropy",
    .doc = "y = -(t log x + (1 - t) log(1 - x)) element-wise (same shapes) for probabilities x, logs "
           "clamped at FLT_MIN; both inputs get gradients; not averaged",
    .in_names = "x,target", .n_in = 2, .n_out = 1,
    .setup = same_shape_setup, .forward = bce_forward, .backward = bce_backward,
    .grad_in_data = 3, .grad_out_data = 0,
};

/* ---- categorical_cross_entropy ----------------------------------------------------- */

/* CCE_AXIS, nl_cce_fwd, nl_cce_bwd: index_plans.h */
static const nl_argdef cce_args[] = {{"axis", NL_ARG_AXIS, "-1", NULL}};

static int cce_setup(nl_func *f) {
    int64_t want[NL_MAX_NDIM];
    int a;
    if (nl_class_target_check(f, CCE_AXIS, want, &a)) return -1;
    nl_set_out_shape(f, 0, nl_in(f, 0)->ndim, want);
    return 0;
}

/* x: (outer, C, inner); target, y: (outer, 1, inner); y = -log max(x[label], FLT_MIN) */
static int cce_forward(nl_func *f) {
    int64_t outer, C, inner;
    if (nl_class_dims(f, CCE_AXIS, &outer, &C, &inner)) return -1;
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(const float *, t, nl_in_data(f, 1));
    NL_PTR(float *, y, nl_out_data(f, 0));
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            const int64_t pos = o * inner + i;
            int64_t l = 0;
            if (nl_class_label(t[pos], C, pos, &l)) return -1;
            y[pos] = nl_cce_fwd(x[(o * C + l) * inner + i]);
        }
    return 0;
}

/* dx: (outer, C, inner) = -dy / max(x, FLT_MIN) at the label, 0 elsewhere */
static int cce_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (prop[0]) {
        int64_t outer, C, inner;
        if (nl_class_dims(f, CCE_AXIS, &outer, &C, &inner)) return -1;
        NL_PTR(const float *, x, nl_in_data(f, 0));
        NL_PTR(const float *, t, nl_in_data(f, 1));
        NL_PTR(const float *, dy, nl_out_grad(f, 0));
        NL_PTR(float *, dx, nl_in_grad(f, 0, accum[0]));
        if (!accum[0]) memset(dx, 0, (size_t)nl_in(f, 0)->size * sizeof(float));
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++) {
                const int64_t pos = o * inner + i;
                int64_t l = 0;
                if (nl_class_label(t[pos], C, pos, &l)) return -1;
                const int64_t k = (o * C + l) * inner + i;
                dx[k] -= nl_cce_bwd(x[k], dy[pos]);
            }
    }
    nl_no_grad_input(f, 1, prop, accum);
    return 0;
}

const nl_fdef nl_fdef_categorical_cross_entropy = {
    .name = "categorical_cross_entropy",
    .doc = "y = -log(x[target]) along axis (default -1) for probabilities x; target: x's shape with 1 "
           "on the axis, holding 0-based class ids 0..C-1 (as floats); not averaged",
    .in_names = "x,target", .n_in = 2, .n_out = 1,
    .n_args = 1, .args = cce_args,
    .setup = cce_setup, .forward = cce_forward, .backward = cce_backward,
    .grad_in_data = 3, .grad_out_data = 0,
};

/* ---- absolute_error, huber_loss, epsilon_insensitive_loss ---------------------------- */
/* y = loss(d) with d = x0 - x1; dx0 = loss'(d) dy, dx1 = -loss'(d) dy (x0 before x1: the
 * graph sets accum on the second of two identical inputs); OP = abserr, huber, eil of
 * elementwise_math.h */

#define DIFF_LOSS(NAME, OP, ARG)                                                         \
    static int NAME##_forward(nl_func *f) {                                               \
        NL_PTR(const float *, a, nl_in_data(f, 0));                                       \
        NL_PTR(const float *, b, nl_in_data(f, 1));                                       \
        NL_PTR(float *, y, nl_out_data(f, 0));                                            \
        const float v = ARG;                                                              \
        const int64_t n = nl_in(f, 0)->size;                                              \
        for (int64_t i = 0; i < n; i++) y[i] = nl_##OP##_fwd(a[i], b[i], v);              \
        return 0;                                                                         \
    }                                                                                     \
    static int NAME##_backward(nl_func *f, const bool *prop, const bool *accum) {         \
        NL_PTR(const float *, a, nl_in_data(f, 0));                                       \
        NL_PTR(const float *, b, nl_in_data(f, 1));                                       \
        NL_PTR(const float *, dy, nl_out_grad(f, 0));                                     \
        const float v = ARG;                                                              \
        const int64_t n = nl_in(f, 0)->size;                                              \
        for (int k = 0; k < 2; k++) {                                                     \
            if (!prop[k]) continue;                                                       \
            const float s = k == 0 ? 1.0f : -1.0f;                                        \
            NL_PTR(float *, dx, nl_in_grad(f, k, accum[k]));                              \
            for (int64_t i = 0; i < n; i++) PUT(dx[i], accum[k], s * nl_##OP##_bwd(a[i], b[i], dy[i], v)); \
        }                                                                                 \
        return 0;                                                                         \
    }

DIFF_LOSS(absolute_error, abserr, 0.0f)

const nl_fdef nl_fdef_absolute_error = {
    .name = "absolute_error",
    .doc = "y = |x0 - x1| element-wise (same shapes); not averaged",
    .in_names = "x0,x1", .n_in = 2, .n_out = 1,
    .setup = same_shape_setup, .forward = absolute_error_forward, .backward = absolute_error_backward,
    .grad_in_data = 3, .grad_out_data = 0,
};

enum { HUBER_DELTA };
static const nl_argdef huber_args[] = {{"delta", NL_ARG_FLOAT, "1.0", NULL}};

static int huber_setup(nl_func *f) {
    const double delta = nl_arg_float(f, HUBER_DELTA);
    if (!(delta > 0) || !isfinite(delta)) return nl_error("argument 'delta' must be a positive number, got %g", delta);
    return same_shape_setup(f);
}

DIFF_LOSS(huber_loss, huber, (float)nl_arg_float(f, HUBER_DELTA))

const nl_fdef nl_fdef_huber_loss = {
    .name = "huber_loss",
    .doc = "d = x0 - x1; y = d^2 where |d| < delta (default 1), else delta (2|d| - delta); element-wise "
           "(same shapes); not averaged",
    .in_names = "x0,x1", .n_in = 2, .n_out = 1,
    .n_args = 1, .args = huber_args,
    .setup = huber_setup, .forward = huber_loss_forward, .backward = huber_loss_backward,
    .grad_in_data = 3, .grad_out_data = 0,
};

enum { EIL_EPSILON };
static const nl_argdef eil_args[] = {{"epsilon", NL_ARG_FLOAT, "nil", NULL}};

static int eil_setup(nl_func *f) {
    if (!nl_arg_given(f, EIL_EPSILON)) return nl_error("argument 'epsilon' is required (a number >= 0)");
    const double e = nl_arg_float(f, EIL_EPSILON);
    if (!(e >= 0) || !isfinite(e)) return nl_error("argument 'epsilon' must be a number >= 0, got %g", e);
    return same_shape_setup(f);
}

DIFF_LOSS(epsilon_insensitive_loss, eil, (float)nl_arg_float(f, EIL_EPSILON))

const nl_fdef nl_fdef_epsilon_insensitive_loss = {
    .name = "epsilon_insensitive_loss",
    .doc = "y = |x0 - x1| - epsilon where |x0 - x1| > epsilon, else 0; element-wise (same shapes); "
           "epsilon is required; not averaged",
    .in_names = "x0,x1", .n_in = 2, .n_out = 1,
    .n_args = 1, .args = eil_args,
    .setup = eil_setup, .forward = epsilon_insensitive_loss_forward,
    .backward = epsilon_insensitive_loss_backward,
    .grad_in_data = 3, .grad_out_data = 0,
};

/* ---- kl_multinomial ---------------------------------------------------------------- */

/* KL_BASE_AXIS, nl_kl_dims (p, q: (n, k); D: (n)) and the math nl_kl_*: index_plans.h */
static const nl_argdef kl_args[] = {{"base_axis", NL_ARG_INT, "2", NULL}};

static int kl_setup(nl_func *f) {
    const nl_var *p = nl_in(f, 0), *q = nl_in(f, 1);
    char s1[160], s2[160];
    if (!nl_same_shape(p, q))
        return nl_error("inputs 'p' %s and 'q' %s must have the same shape", nl_shape_str(s1, p->ndim, p->shape),
                        nl_shape_str(s2, q->ndim, q->shape));
    if (p->ndim == 0) return nl_error("input 'p' is 0-d; it needs at least one axis");
    int64_t n, k;
    int ba = nl_kl_dims(f, &n, &k);
    if (ba < 0) return -1;
    int64_t shape[NL_MAX_NDIM];
    for (int d = 0; d < ba; d++) shape[d] = p->shape[d];
    shape[ba] = 1;
    nl_set_out_shape(f, 0, ba + 1, shape);
    return 0;
}

static int kl_forward(nl_func *f) {
    int64_t n, k;
    if (nl_kl_dims(f, &n, &k) < 0) return -1;
    NL_PTR(const float *, p, nl_in_data(f, 0));
    NL_PTR(const float *, q, nl_in_data(f, 1));
    NL_PTR(float *, y, nl_out_data(f, 0));
    for (int64_t i = 0; i < n; i++) {
        const float *pi = p + i * k, *qi = q + i * k;
        double s = 0;
        for (int64_t j = 0; j < k; j++) s += nl_kl_term(pi[j], qi[j]);
        y[i] = (float)s;
    }
    return 0;
}

/* dp = dy (log(p + e) - log(q + e) + p / (p + e)), dq = -dy p / (q + e) (the exact
 * derivatives of the forward; NNabla writes 1 and p / q, equal up to e = 1e-8) */
static int kl_backward(nl_func *f, const bool *prop, const bool *accum) {
    int64_t n, k;
    if (nl_kl_dims(f, &n, &k) < 0) return -1;
    NL_PTR(const float *, p, nl_in_data(f, 0));
    NL_PTR(const float *, q, nl_in_data(f, 1));
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    if (prop[0]) {
        NL_PTR(float *, dp, nl_in_grad(f, 0, accum[0]));
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = i * k; j < (i + 1) * k; j++)
                PUT(dp[j], accum[0], nl_kl_dp(p[j], q[j], dy[i]));
    }
    if (prop[1]) {
        NL_PTR(float *, dq, nl_in_grad(f, 1, accum[1]));
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = i * k; j < (i + 1) * k; j++) PUT(dq[j], accum[1], nl_kl_dq(p[j], q[j], dy[i]));
    }
    return 0;
}

const nl_fdef nl_fdef_kl_multinomial = {
    .name = "kl_multinomial",
    .doc = "D = sum p (log p - log q) over the axes from base_axis (default 2) on, for probabilities p "
           "and q of one shape; D has p's shape up to base_axis - 1, then 1",
    .in_names = "p,q", .n_in = 2, .n_out = 1,
    .n_args = 1, .args = kl_args,
    .setup = kl_setup, .forward = kl_forward, .backward = kl_backward,
    .grad_in_data = 3, .grad_out_data = 0,
};
