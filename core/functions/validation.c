/*
 * validation.c - metrics and graph plumbing, NNabla semantics:
 *   top_n_error(x, target, axis=-1, n=1)  y = 1 where the label's score is not among the n
 *                                         best (more than n classes score >= it), else 0;
 *                                         y: target's shape
 *   binary_error(x, target)               y = ((x >= 0.5) != (t >= 0.5)), same shapes
 *   confusion_matrix(x, target, axis=-1)  y: (C, C), y[label][argmax x] counts (rows: the
 *                                         true class, columns: the predicted one)
 *   unlink(x)                             y = x; no gradient flows back (x gets zero)
 *   sink(x, ..., one_input_grad=true)     y: a dummy 0-d output (0) that makes one root of
 *                                         several outputs; backward gives every input the
 *                                         gradient 1 (ignoring y's gradient), or, with
 *                                         one_input_grad = false, leaves the inputs' gradients
 *                                         as they are (set them beforehand)
 * The metrics give their inputs zero gradients. Labels are 0-based class ids as in
 * softmax_cross_entropy; an out-of-range label makes forward fail.
 */
#include "labels.h"
#include "generator_args.h"
#include <string.h>

/* ---- top_n_error -------------------------------------------------------------------- */

/* TOPN_*, CM_AXIS and the per-position math: labels.h (shared with cuda/validation.cu) */
static const nl_argdef topn_args[] = {
    {"axis", NL_ARG_AXIS, "-1", NULL},
    {"n", NL_ARG_INT, "1", NULL},
};

static int topn_setup(nl_func *f) {
    int64_t want[NL_MAX_NDIM];
    int a;
    if (nl_class_target_check(f, TOPN_AXIS, want, &a)) return -1;
    if (nl_arg_int(f, TOPN_N) < 1) return nl_error("argument 'n' must be >= 1, got %lld", (long long)nl_arg_int(f, TOPN_N));
    nl_set_out_shape(f, 0, nl_in(f, 0)->ndim, want);
    return 0;
}

/* x: (outer, C, inner); target, y: (outer, 1, inner) */
static int topn_forward(nl_func *f) {
    int64_t outer, C, inner;
    if (nl_class_dims(f, TOPN_AXIS, &outer, &C, &inner)) return -1;
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(const float *, t, nl_in_data(f, 1));
    NL_PTR(float *, y, nl_out_data(f, 0));
    const int64_t n = nl_arg_int(f, TOPN_N);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            const int64_t pos = o * inner + i;
            int64_t l = 0;
            if (nl_class_label(t[pos], C, pos, &l)) return -1;
            y[pos] = nl_top_n_error_at(x + o * C * inner + i, C, inner, l, n);
        }
    return 0;
}

static int metric_backward(nl_func *f, const bool *prop, const bool *accum) {
    for (int i = 0; i < f->n_in; i++) nl_no_grad_input(f, i, prop, accum);
    return 0;
}

const nl_fdef nl_fdef_top_n_error = {
    .name = "top_n_error",
    .doc = "y = 1 where target's class is not among the n (default 1) best scores of x along axis "
           "(default -1), else 0; target: x's shape with 1 on the axis, 0-based class ids; no gradient",
    .in_names = "x,target", .n_in = 2, .n_out = 1,
    .n_args = 2, .args = topn_args,
    .setup = topn_setup, .forward = topn_forward, .backward = metric_backward,
};

/* ---- binary_error ------------------------------------------------------------------- */

static int binerr_setup(nl_func *f) {
    const nl_var *a = nl_in(f, 0), *b = nl_in(f, 1);
    char s1[160], s2[160];
    if (!nl_same_shape(a, b))
        return nl_error("inputs 'x' %s and 'target' %s must have the same shape", nl_shape_str(s1, a->ndim, a->shape),
                        nl_shape_str(s2, b->ndim, b->shape));
    nl_set_out_shape(f, 0, a->ndim, a->shape);
    return 0;
}

/* x, t, y: same shape */
static int binerr_forward(nl_func *f) {
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(const float *, t, nl_in_data(f, 1));
    NL_PTR(float *, y, nl_out_data(f, 0));
    const int64_t n = nl_in(f, 0)->size;
    for (int64_t i = 0; i < n; i++) y[i] = nl_binary_error(x[i], t[i]);
    return 0;
}

const nl_fdef nl_fdef_binary_error = {
    .name = "binary_error",
    .doc = "y = 1 where (x >= 0.5) differs from (target >= 0.5), else 0; element-wise (same shapes); "
           "no gradient",
    .in_names = "x,target", .n_in = 2, .n_out = 1,
    .setup = binerr_setup, .forward = binerr_forward, .backward = metric_backward,
};

/* ---- confusion_matrix --------------------------------------------------------------- */

static const nl_argdef cm_args[] = {{"axis", NL_ARG_AXIS, "-1", NULL}};

static int cm_setup(nl_func *f) {
    int a;
    if (nl_class_target_check(f, CM_AXIS, NULL, &a)) return -1;
    const int64_t C = nl_in(f, 0)->shape[a];
    nl_set_out_shape(f, 0, 2, (int64_t[]){C, C});
    return 0;
}

/* x: (outer, C, inner); target: (outer, 1, inner); y: (C, C) */
static int cm_forward(nl_func *f) {
    int64_t outer, C, inner;
    if (nl_class_dims(f, CM_AXIS, &outer, &C, &inner)) return -1;
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(const float *, t, nl_in_data(f, 1));
    NL_PTR(float *, y, nl_out_data(f, 0));
    memset(y, 0, (size_t)(C * C) * sizeof(float));
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            const int64_t pos = o * inner + i;
            int64_t l = 0;
            if (nl_class_label(t[pos], C, pos, &l)) return -1;
            y[l * C + nl_argmax_at(x + o * C * inner + i, C, inner)] += 1.0f;
        }
    return 0;
}

const nl_fdef nl_fdef_confusion_matrix = {
    .name = "confusion_matrix",
    .doc = "y (C, C): y[t][p] counts the positions whose target class is t and whose argmax of x along "
           "axis (default -1) is p (the first maximum); target as in top_n_error; no gradient",
    .in_names = "x,target", .n_in = 2, .n_out = 1,
    .n_args = 1, .args = cm_args,
    .setup = cm_setup, .forward = cm_forward, .backward = metric_backward,
};

/* ---- unlink ------------------------------------------------------------------------- */

static int unlink_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0);
    nl_set_out_shape(f, 0, x->ndim, x->shape);
    return 0;
}

/* x, y: same shape */
static int unlink_forward(nl_func *f) {
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(float *, y, nl_out_data(f, 0));
    memcpy(y, x, (size_t)nl_in(f, 0)->size * sizeof(float));
    return 0;
}

const nl_fdef nl_fdef_unlink = {
    .name = "unlink",
    .doc = "y = x in forward; no gradient flows back to x (it receives zero)",
    .in_names = "x", .n_in = 1, .n_out = 1,
    .setup = unlink_setup, .forward = unlink_forward, .backward = metric_backward,
};

/* ---- sink --------------------------------------------------------------------------- */

static const nl_argdef sink_args[] = {{"one_input_grad", NL_ARG_BOOL, "true", NULL}};

static int sink_setup(nl_func *f) {
    nl_set_out_shape(f, 0, 0, NULL);
    return 0;
}

static int sink_forward(nl_func *f) {
    NL_PTR(float *, y, nl_out_data(f, 0));
    y[0] = 0.0f;
    return 0;
}

/* every input's gradient (+)= 1 (a lazy fill when overwriting), or untouched */
static int sink_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!nl_arg_bool(f, SINK_ONE_INPUT_GRAD)) return 0;
    for (int i = 0; i < f->n_in; i++) {
        if (!prop[i]) continue;
        if (!accum[i]) { nl_array_fill(nl_in(f, i)->grad, 1.0f); continue; }
        NL_PTR(float *, dx, nl_in_grad(f, i, true));
        const int64_t n = nl_in(f, i)->size;
        for (int64_t k = 0; k < n; k++) dx[k] += 1.0f;
    }
    return 0;
}

const nl_fdef nl_fdef_sink = {
    .name = "sink",
    .doc = "a dummy 0-d output joining several outputs into one root to run forward/backward on; "
           "backward gives each input the gradient 1 (one_input_grad, default true) or leaves the "
           "inputs' gradients as set beforehand (false)",
    .in_names = "x", .n_in = 1, .variadic = true, .n_out = 1,
    .n_args = 1, .args = sink_args,
    .setup = sink_setup, .forward = sink_forward, .backward = sink_backward,
};
