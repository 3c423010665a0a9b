/*
 * labels.h - shared by the functions that take class ids (categorical_cross_entropy,
 * top_n_error, confusion_matrix): the class-axis layout and the label checks, with the
 * same messages as softmax_cross_entropy; and what validation.c's metrics share with
 * their CUDA twins (cuda/validation.cu): argument positions and per-position math.
 *   x: (outer, C, inner) around the class axis; target: (outer, 1, inner) holding 0-based
 *   class ids stored as floats.
 */
#ifndef NNLUA_LABELS_H
#define NNLUA_LABELS_H
#include "../src/function.h"
#include "elementwise_math.h"   /* NL_HD: the label tests run on the device too */
#include <math.h>

/* Splits x's shape around the (Lua-style) class axis given by argument `k`. */
static inline int nl_class_dims(nl_func *f, int k, int64_t *outer, int64_t *C, int64_t *inner) {
    const nl_var *x = nl_in(f, 0);
    int a;
    if (nl_norm_axis("axis", nl_arg_int(f, k), x->ndim, &a)) return -1;
    *outer = 1; *inner = 1;
    for (int d = 0; d < a; d++) *outer *= x->shape[d];
    for (int d = a + 1; d < x->ndim; d++) *inner *= x->shape[d];
    *C = x->shape[a];
    return 0;
}

/* Setup check: target (input 1) has x's shape with 1 on the class axis (argument `k`);
 * writes that shape to want (may be NULL) and the 0-based axis to *axis. */
static inline int nl_class_target_check(nl_func *f, int k, int64_t *want, int *axis) {
    const nl_var *x = nl_in(f, 0), *t = nl_in(f, 1);
    char s1[160], s2[160], s3[160];
    if (x->ndim == 0) return nl_error("input 'x' is 0-d; it needs a class axis");
    int a;
    if (nl_norm_axis("axis", nl_arg_int(f, k), x->ndim, &a)) return -1;
    int64_t w[NL_MAX_NDIM];
    for (int d = 0; d < x->ndim; d++) w[d] = d == a ? 1 : x->shape[d];
    bool ok = t->ndim == x->ndim;
    for (int d = 0; ok && d < x->ndim; d++) ok = t->shape[d] == w[d];
    if (!ok)
        return nl_error("input 'target' has shape %s, expected %s (x's shape %s with 1 on the class axis %d)",
                        nl_shape_str(s1, t->ndim, t->shape), nl_shape_str(s2, x->ndim, w),
                        nl_shape_str(s3, x->ndim, x->shape), a + 1);
    if (x->shape[a] == 0) return nl_error("input 'x' has no classes (size 0 on axis %d)", a + 1);
    if (want)
        for (int d = 0; d < x->ndim; d++) want[d] = w[d];
    *axis = a;
    return 0;
}

/* The tests of nl_class_label, for the host and the device: l in 0..C-1, and l a valid
 * label (in range and an integer). */
NL_HD bool nl_class_label_in_range(float l, int64_t C) { return l >= 0.0f && l <= (float)(C - 1); }
NL_HD bool nl_class_label_ok(float l, int64_t C) { return nl_class_label_in_range(l, C) && l == floorf(l); }

/* Checks one label (a float class id) against 0..C-1; pos is 0-based in target. */
static inline int nl_class_label(float l, int64_t C, int64_t pos, int64_t *out) {
    if (!nl_class_label_in_range(l, C))
        return nl_error("label %g at position %lld is out of range 0..%lld", (double)l, (long long)(pos + 1),
                        (long long)(C - 1));
    if (l != floorf(l))
        return nl_error("label %g at position %lld is out of range 0..%lld (labels are integer class ids)",
                        (double)l, (long long)(pos + 1), (long long)(C - 1));
    *out = (int64_t)l;
    return 0;
}

/* Inputs that get no gradient (labels, comparisons): a non-accumulating write is a
 * lazy zero (free); an accumulating one adds nothing. */
static inline void nl_no_grad_input(nl_func *f, int i, const bool *prop, const bool *accum) {
    if (prop[i] && !accum[i]) nl_array_zero(nl_in(f, i)->grad);
}

/* ---- the metrics of validation.c (top_n_error, binary_error, confusion_matrix) ---- */
enum { TOPN_AXIS, TOPN_N };
enum { CM_AXIS };

/* top_n_error at one position: xo points at its class 0 (classes inner apart), l its
 * (valid) label; 1 when more than n classes score >= the label's score, else 0. */
NL_HD float nl_top_n_error_at(const float *xo, int64_t C, int64_t inner, int64_t l, int64_t n) {
    const float th = xo[l * inner];
    int64_t count = 0;
    for (int64_t c = 0; c < C; c++) count += xo[c * inner] >= th;
    return count > n ? 1.0f : 0.0f;
}

/* confusion_matrix's prediction at one position: the first class with the largest score */
NL_HD int64_t nl_argmax_at(const float *xo, int64_t C, int64_t inner) {
    int64_t best = 0;
    for (int64_t c = 1; c < C; c++)
        if (xo[c * inner] > xo[best * inner]) best = c;
    return best;
}

/* binary_error: 1 where (x >= 0.5) differs from (t >= 0.5) */
NL_HD float nl_binary_error(float x, float t) { return (x >= 0.5f) != (t >= 0.5f) ? 1.0f : 0.0f; }

#endif
