/*
 * array_ops.c - array manipulation (Lua conventions: axes 1-based, negative from the end):
 *   concatenate(x..., axis=-1), split(x, axis=1) -> x.shape[axis] outputs,
 *   stack(x..., axis=1), pad(x, pad_width, mode, constant_value), transpose(x, axes),
 *   broadcast(x, shape), broadcast_to(x, y, axis=nil), tile(x, reps), flip(x, axes={-1}),
 *   shift(x, shifts=nil, border_mode), matrix_diag(x), matrix_diag_part(x),
 *   trilu(x, k=0, upper=true), interpolate(x, scale, output_size, mode, ...)
 * and the functions without inputs: arange(start, stop, step=1) (inclusive, like every
 * Lua range), linspace(start, stop, num), constant(val=0, shape={}).
 * Most of them are strided views (nd_view.h): forward gathers through the view and
 * backward scatters through the same view.
 */
#include "nd_view.h"
#include "index_plans.h"
#include "generator_args.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void free_state(nl_func *f) { free(f->state); }

/* ==== concatenate, stack: each input is a view into the output ======================== */

static multi_plan *multi_new(nl_func *f, int n) {
    multi_plan *p = calloc(1, sizeof *p + (size_t)n * sizeof(nl_view));
    if (!p) { nl_error("out of memory"); return NULL; }
    p->n = n;
    f->state = p;
    return p;
}

enum { CAT_AXIS };
static const nl_argdef concat_args[] = {{"axis", NL_ARG_AXIS, "-1", NULL}};

static int concatenate_setup(nl_func *f) {
    const nl_var *x0 = nl_in(f, 0);
    const int nd = x0->ndim;
    char s1[160], s2[160];
    int a;
    if (nl_norm_axis("axis", nl_arg_int(f, CAT_AXIS), nd, &a)) return -1;
    int64_t oshape[NL_MAX_NDIM];
    memcpy(oshape, x0->shape, sizeof oshape);
    oshape[a] = 0;
    for (int i = 0; i < f->n_in; i++) {
        const nl_var *x = nl_in(f, i);
        bool ok = x->ndim == nd;
        for (int d = 0; ok && d < nd; d++) ok = d == a || x->shape[d] == x0->shape[d];
        if (!ok)
            return nl_error("input %d has shape %s but input 1 has shape %s: all sizes but axis %d must agree",
                            i + 1, nl_shape_str(s1, x->ndim, x->shape), nl_shape_str(s2, nd, x0->shape), a + 1);
        oshape[a] += x->shape[a];
    }
    nl_set_out_shape(f, 0, nd, oshape);
    multi_plan *p = multi_new(f, f->n_in);
    if (!p) return -1;
    int64_t yst[NL_MAX_NDIM];
    nl_row_strides(nd, oshape, yst);
    int64_t at = 0;
    for (int i = 0; i < f->n_in; i++) {
        const nl_var *x = nl_in(f, i);
        nl_view *v = &p->view[i];
        v->nd = nd;
        memcpy(v->shape, x->shape, (size_t)nd * sizeof(int64_t));
        memcpy(v->stride, yst, (size_t)nd * sizeof(int64_t));
        v->base = at * yst[a];
        at += x->shape[a];
        nl_view_simplify(v);
    }
    return 0;
}

enum { STK_AXIS };
static const nl_argdef stack_args[] = {{"axis", NL_ARG_AXIS, "1", NULL}};

static int stack_setup(nl_func *f) {
    const nl_var *x0 = nl_in(f, 0);
    const int nd = x0->ndim;
    char s1[160], s2[160];
    if (nd + 1 > NL_MAX_NDIM) return nl_error("stacking %d-d inputs gives more than %d axes", nd, NL_MAX_NDIM);
    int a;
    if (nl_norm_axis("axis", nl_arg_int(f, STK_AXIS), nd + 1, &a)) return -1;
    for (int i = 1; i < f->n_in; i++)
        if (!nl_same_shape(nl_in(f, i), x0))
            return nl_error("input %d has shape %s but input 1 has shape %s: stacked inputs must have one shape",
                            i + 1, nl_shape_str(s1, nl_in(f, i)->ndim, nl_in(f, i)->shape), nl_shape_str(s2, nd, x0->shape));
    int64_t oshape[NL_MAX_NDIM];
    for (int d = 0, k = 0; d <= nd; d++) oshape[d] = d == a ? f->n_in : x0->shape[k++];
    nl_set_out_shape(f, 0, nd + 1, oshape);
    multi_plan *p = multi_new(f, f->n_in);
    if (!p) return -1;
    int64_t yst[NL_MAX_NDIM];
    nl_row_strides(nd + 1, oshape, yst);
    for (int i = 0; i < f->n_in; i++) {
        nl_view *v = &p->view[i];
        v->nd = nd;
        for (int d = 0, k = 0; d <= nd; d++) {
            if (d == a) continue;
            v->shape[k] = x0->shape[k];
            v->stride[k] = yst[d];
            k++;
        }
        v->base = i * yst[a];
        nl_view_simplify(v);
    }
    return 0;
}

/* x_i: their shapes; y: the joined shape, x_i written into its view of y */
static int join_forward(nl_func *f) {
    const multi_plan *p = f->state;
    NL_PTR(float *, y, nl_out_data(f, 0));
    for (int i = 0; i < p->n; i++) {
        NL_PTR(const float *, x, nl_in_data(f, i));
        nl_view_run(&p->view[i], x, y, true, false);
    }
    return 0;
}

/* dy: the joined shape; dx_i = dy read through x_i's view */
static int join_backward(nl_func *f, const bool *prop, const bool *accum) {
    const multi_plan *p = f->state;
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    for (int i = 0; i < p->n; i++) {
        if (!prop[i]) continue;
        NL_PTR(float *, dx, nl_in_grad(f, i, accum[i]));
        nl_view_run(&p->view[i], dy, dx, false, accum[i]);
    }
    return 0;
}

const nl_fdef nl_fdef_concatenate = {
    .name = "concatenate",
    .doc = "y = the inputs joined along axis (1-based, default -1: the last); F.concatenate(a, b, ...) or "
           "F.concatenate({a, b, ...}, axis)",
    .in_names = "x", .n_in = 1, .variadic = true, .n_out = 1,
    .n_args = 1, .args = concat_args,
    .setup = concatenate_setup, .forward = join_forward, .backward = join_backward, .destroy = free_state,
};

const nl_fdef nl_fdef_stack = {
    .name = "stack",
    .doc = "y = the inputs (of one shape) stacked on a new axis at position axis (1-based, default 1; "
           "-1 appends it last)",
    .in_names = "x", .n_in = 1, .variadic = true, .n_out = 1,
    .n_args = 1, .args = stack_args,
    .setup = stack_setup, .forward = join_forward, .backward = join_backward, .destroy = free_state,
};

/* ==== split ============================================================================ */

enum { SPL_AXIS };
static const nl_argdef split_args[] = {{"axis", NL_ARG_AXIS, "1", NULL}};

static int split_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0);
    const int nd = x->ndim;
    char s1[160];
    int a;
    if (nl_norm_axis("axis", nl_arg_int(f, SPL_AXIS), nd, &a)) return -1;
    int64_t n = x->shape[a];
    if (n < 1 || n > NL_MAX_OUTPUTS)
        return nl_error("axis %d of input shape %s has size %lld; split makes one output per entry (1 to %d)",
                        a + 1, nl_shape_str(s1, nd, x->shape), (long long)n, NL_MAX_OUTPUTS);
    if (nl_set_n_out(f, (int)n)) return -1;
    int64_t oshape[NL_MAX_NDIM], xst[NL_MAX_NDIM];
    for (int d = 0, k = 0; d < nd; d++) if (d != a) oshape[k++] = x->shape[d];
    for (int o = 0; o < n; o++) nl_set_out_shape(f, o, nd - 1, oshape);
    multi_plan *p = multi_new(f, (int)n);
    if (!p) return -1;
    nl_row_strides(nd, x->shape, xst);
    for (int o = 0; o < n; o++) {
        nl_view *v = &p->view[o];
        v->nd = nd - 1;
        for (int d = 0, k = 0; d < nd; d++) {
            if (d == a) continue;
            v->shape[k] = x->shape[d];
            v->stride[k] = xst[d];
            k++;
        }
        v->base = o * xst[a];
        nl_view_simplify(v);
    }
    return 0;
}

/* x: (..., n, ...); y_o = x[..., o, ...] with the axis dropped */
static int split_forward(nl_func *f) {
    const multi_plan *p = f->state;
    NL_PTR(const float *, x, nl_in_data(f, 0));
    for (int o = 0; o < p->n; o++) {
        NL_PTR(float *, y, nl_out_data(f, o));
        nl_view_run(&p->view[o], x, y, false, false);
    }
    return 0;
}

/* dy_o: the output shape; dx[..., o, ...] = dy_o (the views tile dx exactly) */
static int split_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    const multi_plan *p = f->state;
    NL_PTR(float *, dx, nl_in_grad(f, 0, accum[0]));
    for (int o = 0; o < p->n; o++) {
        NL_PTR(const float *, dy, nl_out_grad(f, o));
        nl_view_run(&p->view[o], dy, dx, true, accum[0]);
    }
    return 0;
}

const nl_fdef nl_fdef_split = {
    .name = "split",
    .doc = "returns x.shape[axis] outputs, the slices of x along axis (1-based, default 1) with that axis removed",
    .in_names = "x", .n_in = 1, .n_out = -1,
    .n_args = 1, .args = split_args,
    .setup = split_setup, .forward = split_forward, .backward = split_backward, .destroy = free_state,
};

/* ==== one-view functions: transpose, broadcast, broadcast_to, tile, flip ================ */

static view_plan *view_new(nl_func *f) {
    view_plan *p = calloc(1, sizeof *p);
    if (!p) { nl_error("out of memory"); return NULL; }
    f->state = p;
    return p;
}

/* src: any shape; y: the view's shape, y[j] = src[off(j)] */
static int view_forward(nl_func *f) {
    const view_plan *p = f->state;
    NL_PTR(const float *, x, nl_in_data(f, p->src));
    NL_PTR(float *, y, nl_out_data(f, 0));
    nl_view_run(&p->view, x, y, false, false);
    return 0;
}

/* dy: the view's shape; dsrc[off(j)] += dy[j] (zero where nothing reads); other inputs get 0 */
static int view_backward(nl_func *f, const bool *prop, const bool *accum) {
    const view_plan *p = f->state;
    for (int i = 0; i < f->n_in; i++) {
        if (!prop[i]) continue;
        NL_PTR(float *, dx, nl_in_grad(f, i, accum[i]));
        if (i != p->src) { nl_grad_clear(dx, nl_in(f, i)->size, accum[i]); continue; }
        NL_PTR(const float *, dy, nl_out_grad(f, 0));
        if (p->injective && !accum[i]) {
            /* a permutation covers every element exactly once: plain writes */
            nl_view_run(&p->view, dy, dx, true, false);
        } else {
            nl_grad_clear(dx, nl_in(f, i)->size, accum[i]);
            nl_view_run(&p->view, dy, dx, true, true);
        }
    }
    return 0;
}

/* ---- transpose ---- */

enum { TR_AXES };
static const nl_argdef transpose_args[] = {{"axes", NL_ARG_AXES, "nil", NULL}};

static int transpose_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0);
    const int nd = x->ndim;
    char s1[160];
    if (!nl_arg_given(f, TR_AXES))
        return nl_error("argument 'axes' is required: a permutation of 1..%d", nd);
    if (nl_arg_len(f, TR_AXES) != nd)
        return nl_error("argument 'axes' has %d entries for a %d-d input of shape %s (a permutation of 1..%d)",
                        nl_arg_len(f, TR_AXES), nd, nl_shape_str(s1, nd, x->shape), nd);
    view_plan *p = view_new(f);
    if (!p) return -1;
    p->injective = true;
    int64_t xst[NL_MAX_NDIM], oshape[NL_MAX_NDIM];
    bool seen[NL_MAX_NDIM] = {false};
    nl_row_strides(nd, x->shape, xst);
    for (int k = 0; k < nd; k++) {
        int a;
        if (nl_norm_axis("axes entry", nl_arg_at(f, TR_AXES, k), nd, &a)) return -1;
        if (seen[a]) return nl_error("argument 'axes' names axis %d twice: it must be a permutation of 1..%d", a + 1, nd);
        seen[a] = true;
        oshape[k] = x->shape[a];
        p->view.shape[k] = x->shape[a];
        p->view.stride[k] = xst[a];
    }
    p->view.nd = nd;
    nl_view_simplify(&p->view);
    nl_set_out_shape(f, 0, nd, oshape);
    return 0;
}

const nl_fdef nl_fdef_transpose = {
    .name = "transpose",
    .doc = "y = x with its axes permuted: y's axis k is x's axis axes[k] (a 1-based permutation; negatives count from the end)",
    .in_names = "x", .n_in = 1, .n_out = 1,
    .n_args = 1, .args = transpose_args,
    .setup = transpose_setup, .forward = view_forward, .backward = view_backward, .destroy = free_state,
};

/* ---- broadcast ---- */

enum { BC_SHAPE };
static const nl_argdef broadcast_args[] = {{"shape", NL_ARG_INTS, "nil", NULL}};

static int broadcast_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0);
    char s1[160], s2[160];
    if (!nl_arg_given(f, BC_SHAPE)) return nl_error("argument 'shape' is required");
    const int nd = nl_arg_len(f, BC_SHAPE);
    int64_t shape[NL_MAX_ARG_LEN], xst[NL_MAX_NDIM];
    for (int k = 0; k < nd; k++) shape[k] = nl_arg_at(f, BC_SHAPE, k);
    if (nd > NL_MAX_NDIM) return nl_error("argument 'shape' has %d entries (at most %d axes)", nd, NL_MAX_NDIM);
    for (int k = 0; k < nd; k++)
        if (shape[k] < 0) return nl_error("argument 'shape' %s has a negative size", nl_shape_str(s1, nd, shape));
    if (x->ndim > nd)
        return nl_error("cannot broadcast shape %s to %s (fewer axes)", nl_shape_str(s1, x->ndim, x->shape),
                        nl_shape_str(s2, nd, shape));
    view_plan *p = view_new(f);
    if (!p) return -1;
    nl_row_strides(x->ndim, x->shape, xst);
    const int lead = nd - x->ndim;
    for (int k = 0; k < nd; k++) {
        int64_t xs = k >= lead ? x->shape[k - lead] : 1;
        if (xs != shape[k] && xs != 1) {
            if (shape[k] == 1)
                return nl_error("cannot broadcast shape %s to %s: axis %d has size %lld (must be 1)",
                                nl_shape_str(s1, x->ndim, x->shape), nl_shape_str(s2, nd, shape), k - lead + 1,
                                (long long)xs);
            return nl_error("cannot broadcast shape %s to %s: axis %d has size %lld (must be %lld or 1)",
                            nl_shape_str(s1, x->ndim, x->shape), nl_shape_str(s2, nd, shape), k - lead + 1,
                            (long long)xs, (long long)shape[k]);
        }
        p->view.shape[k] = shape[k];
        p->view.stride[k] = (k >= lead && xs != 1) ? xst[k - lead] : 0;
    }
    p->view.nd = nd;
    nl_view_simplify(&p->view);
    nl_set_out_shape(f, 0, nd, shape);
    return 0;
}

const nl_fdef nl_fdef_broadcast = {
    .name = "broadcast",
    .doc = "y = x repeated along its size-1 axes to the given shape (x's axes align with the last ones of shape); "
           "the gradient sums over the repeats",
    .in_names = "x", .n_in = 1, .n_out = 1,
    .n_args = 1, .args = broadcast_args,
    .setup = broadcast_setup, .forward = view_forward, .backward = view_backward, .destroy = free_state,
};

/* ---- broadcast_to ---- */

enum { BT_AXIS };
static const nl_argdef broadcast_to_args[] = {{"axis", NL_ARG_AXIS, "nil", NULL}};

static int broadcast_to_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0), *y = nl_in(f, 1);
    char s1[160], s2[160];
    if (y->ndim > x->ndim)
        return nl_error("y %s has more axes than x %s (y is broadcast to x's shape)",
                        nl_shape_str(s1, y->ndim, y->shape), nl_shape_str(s2, x->ndim, x->shape));
    int a = x->ndim - y->ndim;
    if (nl_arg_given(f, BT_AXIS)) {
        if (x->ndim == 0) return nl_error("argument 'axis' is given but x is 0-d");
        if (nl_norm_axis("axis", nl_arg_int(f, BT_AXIS), x->ndim, &a)) return -1;
        if (a + y->ndim > x->ndim)
            return nl_error("y %s does not fit into x %s from axis %d", nl_shape_str(s1, y->ndim, y->shape),
                            nl_shape_str(s2, x->ndim, x->shape), a + 1);
    }
    for (int k = 0; k < y->ndim; k++)
        if (y->shape[k] != x->shape[a + k])
            return nl_error("y %s does not match x %s from axis %d (y's axis %d has size %lld, x's axis %d has %lld)",
                            nl_shape_str(s1, y->ndim, y->shape), nl_shape_str(s2, x->ndim, x->shape), a + 1,
                            k + 1, (long long)y->shape[k], a + k + 1, (long long)x->shape[a + k]);
    view_plan *p = view_new(f);
    if (!p) return -1;
    p->src = 1;
    int64_t yst[NL_MAX_NDIM];
    nl_row_strides(y->ndim, y->shape, yst);
    for (int k = 0; k < x->ndim; k++) {
        p->view.shape[k] = x->shape[k];
        p->view.stride[k] = (k >= a && k < a + y->ndim) ? yst[k - a] : 0;
    }
    p->view.nd = x->ndim;
    nl_view_simplify(&p->view);
    nl_set_out_shape(f, 0, x->ndim, x->shape);
    return 0;
}

const nl_fdef nl_fdef_broadcast_to = {
    .name = "broadcast_to",
    .doc = "z = y repeated to x's shape; y's axes match x's axes starting at axis (1-based; nil = the last ones). "
           "x only gives the shape (its gradient is 0); y's gradient sums over the repeats",
    .in_names = "x,y", .n_in = 2, .n_out = 1,
    .n_args = 1, .args = broadcast_to_args,
    .setup = broadcast_to_setup, .forward = view_forward, .backward = view_backward, .destroy = free_state,
};

/* ---- tile ---- */

enum { TL_REPS };
static const nl_argdef tile_args[] = {{"reps", NL_ARG_INTS, "nil", NULL}};

static int tile_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0);
    if (!nl_arg_given(f, TL_REPS)) return nl_error("argument 'reps' is required (a number or a list)");
    const int nr = nl_arg_len(f, TL_REPS);
    const int nd = nr > x->ndim ? nr : x->ndim;
    if (nd > NL_MAX_NDIM) return nl_error("argument 'reps' has %d entries (at most %d axes)", nr, NL_MAX_NDIM);
    int64_t xs[NL_MAX_NDIM], reps[NL_MAX_NDIM], xst[NL_MAX_NDIM], oshape[NL_MAX_NDIM];
    for (int k = 0; k < nd; k++) {
        int kx = k - (nd - x->ndim), kr = k - (nd - nr);
        xs[k] = kx >= 0 ? x->shape[kx] : 1;
        reps[k] = kr >= 0 ? nl_arg_at(f, TL_REPS, kr) : 1;
        if (reps[k] < 0)
            return nl_error("argument 'reps' entry %d is %lld; repetitions must be >= 0", kr + 1, (long long)reps[k]);
        if ((double)xs[k] * (double)reps[k] > 1e15)
            return nl_error("argument 'reps' entry %d (%lld) makes axis %d far too large", kr + 1, (long long)reps[k], k + 1);
        oshape[k] = xs[k] * reps[k];
    }
    if (nl_check_out_size("y", nd, oshape)) return -1;
    view_plan *p = view_new(f);
    if (!p) return -1;
    nl_row_strides(nd, xs, xst);
    for (int k = 0; k < nd; k++) {
        p->view.shape[2 * k] = reps[k];
        p->view.stride[2 * k] = 0;
        p->view.shape[2 * k + 1] = xs[k];
        p->view.stride[2 * k + 1] = xst[k];
    }
    p->view.nd = 2 * nd;
    nl_view_simplify(&p->view);
    nl_set_out_shape(f, 0, nd, oshape);
    return 0;
}

const nl_fdef nl_fdef_tile = {
    .name = "tile",
    .doc = "y = x repeated reps[k] times along each axis (numpy.tile: the shorter of x's shape and reps is "
           "padded with leading 1s)",
    .in_names = "x", .n_in = 1, .n_out = 1,
    .n_args = 1, .args = tile_args,
    .setup = tile_setup, .forward = view_forward, .backward = view_backward, .destroy = free_state,
};

/* ---- flip ---- */

enum { FL_AXES };
static const nl_argdef flip_args[] = {{"axes", NL_ARG_AXES, "{-1}", NULL}};

static int flip_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0);
    const int nd = x->ndim;
    bool flip[NL_MAX_NDIM] = {false};
    for (int j = 0; j < nl_arg_len(f, FL_AXES); j++) {
        int a;
        if (nl_norm_axis("axes entry", nl_arg_at(f, FL_AXES, j), nd, &a)) return -1;
        flip[a] = !flip[a];
    }
    view_plan *p = view_new(f);
    if (!p) return -1;
    p->injective = true;
    int64_t xst[NL_MAX_NDIM];
    nl_row_strides(nd, x->shape, xst);
    for (int k = 0; k < nd; k++) {
        p->view.shape[k] = x->shape[k];
        p->view.stride[k] = flip[k] ? -xst[k] : xst[k];
        if (flip[k] && x->shape[k] > 0) p->view.base += (x->shape[k] - 1) * xst[k];
    }
    p->view.nd = nd;
    nl_view_simplify(&p->view);
    nl_set_out_shape(f, 0, nd, x->shape);
    return 0;
}

const nl_fdef nl_fdef_flip = {
    .name = "flip",
    .doc = "y = x with the order of elements reversed along the given axes (1-based; default {-1}: the last)",
    .in_names = "x", .n_in = 1, .n_out = 1,
    .n_args = 1, .args = flip_args,
    .setup = flip_setup, .forward = view_forward, .backward = view_backward, .destroy = free_state,
};

/* ==== matrix_diag, matrix_diag_part: the diagonal as a view with stride n + 1 ========= */

static int matrix_diag_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0);
    char s1[160];
    if (x->ndim < 1) return nl_error("x must have at least 1 axis, got shape %s", nl_shape_str(s1, x->ndim, x->shape));
    if (x->ndim + 1 > NL_MAX_NDIM) return nl_error("x %s would give more than %d axes", nl_shape_str(s1, x->ndim, x->shape), NL_MAX_NDIM);
    int64_t oshape[NL_MAX_NDIM] = {0}, yst[NL_MAX_NDIM] = {0};
    memcpy(oshape, x->shape, (size_t)x->ndim * sizeof(int64_t));
    oshape[x->ndim] = x->shape[x->ndim - 1];
    nl_set_out_shape(f, 0, x->ndim + 1, oshape);
    view_plan *p = view_new(f);
    if (!p) return -1;
    nl_row_strides(x->ndim + 1, oshape, yst);
    p->view.nd = x->ndim;
    for (int k = 0; k < x->ndim; k++) { p->view.shape[k] = x->shape[k]; p->view.stride[k] = yst[k]; }
    p->view.stride[x->ndim - 1] = yst[x->ndim - 1] + 1;
    nl_view_simplify(&p->view);
    return 0;
}

/* x: (..., n); y: (..., n, n), zero off the diagonal, y[..., i, i] = x[..., i] */
static int matrix_diag_forward(nl_func *f) {
    const view_plan *p = f->state;
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(float *, y, nl_out_data(f, 0));
    memset(y, 0, (size_t)nl_out(f, 0)->size * sizeof(float));
    nl_view_run(&p->view, x, y, true, false);
    return 0;
}

/* dy: (..., n, n); dx[..., i] = dy[..., i, i] */
static int matrix_diag_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    const view_plan *p = f->state;
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    NL_PTR(float *, dx, nl_in_grad(f, 0, accum[0]));
    nl_view_run(&p->view, dy, dx, false, accum[0]);
    return 0;
}

const nl_fdef nl_fdef_matrix_diag = {
    .name = "matrix_diag",
    .doc = "y = diagonal matrices from the last axis of x: (..., n) -> (..., n, n)",
    .in_names = "x", .n_in = 1, .n_out = 1,
    .setup = matrix_diag_setup, .forward = matrix_diag_forward, .backward = matrix_diag_backward, .destroy = free_state,
};

static int matrix_diag_part_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0);
    char s1[160];
    int nd = x->ndim;
    if (nd < 2 || x->shape[nd - 1] != x->shape[nd - 2])
        return nl_error("x must end in a square matrix (..., n, n), got shape %s", nl_shape_str(s1, nd, x->shape));
    int64_t xst[NL_MAX_NDIM];
    nl_row_strides(nd, x->shape, xst);
    nl_set_out_shape(f, 0, nd - 1, x->shape);
    view_plan *p = view_new(f);
    if (!p) return -1;
    p->view.nd = nd - 1;
    for (int k = 0; k < nd - 1; k++) { p->view.shape[k] = x->shape[k]; p->view.stride[k] = xst[k]; }
    p->view.stride[nd - 2] = xst[nd - 2] + 1;
    nl_view_simplify(&p->view);
    return 0;
}

const nl_fdef nl_fdef_matrix_diag_part = {
    .name = "matrix_diag_part",
    .doc = "y = the diagonals of the last two axes of x: (..., n, n) -> (..., n)",
    .in_names = "x", .n_in = 1, .n_out = 1,
    .setup = matrix_diag_part_setup, .forward = view_forward, .backward = view_backward, .destroy = free_state,
};

/* ==== trilu ============================================================================ */

/* TU_K, TU_UPPER: index_plans.h */
static const nl_argdef trilu_args[] = {
    {"k", NL_ARG_INT, "0", NULL},
    {"upper", NL_ARG_BOOL, "true", NULL},
};

static int trilu_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0);
    char s1[160];
    if (x->ndim < 2) return nl_error("x must have at least 2 axes (..., rows, cols), got shape %s", nl_shape_str(s1, x->ndim, x->shape));
    nl_set_out_shape(f, 0, x->ndim, x->shape);
    return 0;
}

/* Copies (or adds) src into dst where the triangle keeps elements, zero elsewhere
 * (mode 0 write, 1 add); x viewed as (B, rows, cols). */
static void trilu_apply(const nl_func *f, const float *src, float *dst, bool add) {
    const nl_var *x = f->in[0];
    const int64_t rows = x->shape[x->ndim - 2], cols = x->shape[x->ndim - 1];
    const int64_t B = rows > 0 && cols > 0 ? x->size / (rows * cols) : 0;
    const int64_t k = nl_arg_int(f, TU_K);
    const bool upper = nl_arg_bool(f, TU_UPPER);
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < rows; i++) {
            const float *s = src + (b * rows + i) * cols;
            float *d = dst + (b * rows + i) * cols;
            for (int64_t j = 0; j < cols; j++) {
                bool keep = nl_trilu_keep(i, j, k, upper);
                if (add) { if (keep) d[j] += s[j]; }
                else d[j] = keep ? s[j] : 0.0f;
            }
        }
}

/* x: (..., rows, cols); y: the same, x where upper ? j - i >= k : j - i <= k, else 0 */
static int trilu_forward(nl_func *f) {
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(float *, y, nl_out_data(f, 0));
    trilu_apply(f, x, y, false);
    return 0;
}

/* dy: (..., rows, cols); dx = dy masked the same way */
static int trilu_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    NL_PTR(float *, dx, nl_in_grad(f, 0, accum[0]));
    trilu_apply(f, dy, dx, accum[0]);
    return 0;
}

const nl_fdef nl_fdef_trilu = {
    .name = "trilu",
    .doc = "y = the upper (j - i >= k) or lower (j - i <= k) triangle of the last two axes of x, zero elsewhere; "
           "k is the diagonal offset (0 = main, 1 = above it)",
    .in_names = "x", .n_in = 1, .n_out = 1,
    .n_args = 2, .args = trilu_args,
    .setup = trilu_setup, .forward = trilu_forward, .backward = trilu_backward,
};

/* ==== pad, shift: per-axis offset tables =============================================== */

static void tabmap_destroy(nl_func *f) {
    nl_tabmap *m = f->state;
    if (!m) return;
    nl_tabmap_free(m);
    free(m);
}

static nl_tabmap *tabmap_new(nl_func *f, int nd, const int64_t *shape) {
    nl_tabmap *m = calloc(1, sizeof *m);
    if (!m) { nl_error("out of memory"); return NULL; }
    f->state = m;
    if (nl_tabmap_init(m, nd, shape)) return NULL;
    return m;
}

/* ---- pad ---- */

/* PD_WIDTH, PD_MODE, PD_VALUE: index_plans.h */
static const nl_argdef pad_args[] = {
    {"pad_width", NL_ARG_INTS, "nil", NULL},
    {"mode", NL_ARG_CHOICE, "'constant'", "constant|reflect|repeat"},
    {"constant_value", NL_ARG_FLOAT, "0", NULL},
};

static int pad_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0);
    const int nd = x->ndim;
    char s1[160];
    if (!nl_arg_given(f, PD_WIDTH))
        return nl_error("argument 'pad_width' is required: {before, after} pairs for the last axes");
    const int nw = nl_arg_len(f, PD_WIDTH);
    if (nw % 2 != 0 || nw > 2 * nd)
        return nl_error("argument 'pad_width' has %d entries; it needs before/after pairs for at most the %d axes of x %s",
                        nw, nd, nl_shape_str(s1, nd, x->shape));
    const int mode = (int)nl_arg_int(f, PD_MODE);
    int64_t before[NL_MAX_NDIM] = {0}, after[NL_MAX_NDIM] = {0}, oshape[NL_MAX_NDIM] = {0}, xst[NL_MAX_NDIM];
    const int first = nd - nw / 2;
    for (int j = 0; j < nw / 2; j++) {
        before[first + j] = nl_arg_at(f, PD_WIDTH, 2 * j);
        after[first + j] = nl_arg_at(f, PD_WIDTH, 2 * j + 1);
        if (before[first + j] < 0 || after[first + j] < 0)
            return nl_error("argument 'pad_width' has a negative entry (%lld, %lld) for axis %d",
                            (long long)before[first + j], (long long)after[first + j], first + j + 1);
    }
    for (int k = 0; k < nd; k++) {
        oshape[k] = x->shape[k] + before[k] + after[k];
        if (mode != 0 && x->shape[k] == 0 && oshape[k] > 0)
            return nl_error("mode '%s' cannot pad axis %d of size 0 (input shape %s)", mode == 1 ? "reflect" : "repeat",
                            k + 1, nl_shape_str(s1, nd, x->shape));
    }
    nl_tabmap *m = tabmap_new(f, nd, oshape);
    if (!m) return -1;
    nl_row_strides(nd, x->shape, xst);
    for (int k = 0; k < nd; k++) {
        const int64_t n = x->shape[k];
        for (int64_t i = 0; i < oshape[k]; i++) {
            int64_t s = i - before[k], src;
            if (mode == 0) src = (s < 0 || s >= n) ? -1 : s;
            else if (mode == 1) {   /* reflect about the edge elements (numpy 'reflect') */
                int64_t L = n - 1, a = s < 0 ? -s : s;
                src = L > 0 ? llabs(((a / L) & 1) * L - a % L) : 0;
            } else src = s < 0 ? 0 : s >= n ? n - 1 : s;
            m->tab[k][i] = src < 0 ? -1 : src * xst[k];
        }
    }
    nl_set_out_shape(f, 0, nd, oshape);
    return 0;
}

/* x: (n_1, ..., n_k); y: (n_1 + b_1 + a_1, ...), padded by the mode */
static int pad_forward(nl_func *f) {
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(float *, y, nl_out_data(f, 0));
    nl_tabmap_gather(f->state, x, y, (float)nl_arg_float(f, PD_VALUE));
    return 0;
}

/* shift's and pad's backward: dx[source of j] += dy[j] */
static int tabmap_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    NL_PTR(float *, dx, nl_in_grad(f, 0, accum[0]));
    nl_grad_clear(dx, nl_in(f, 0)->size, accum[0]);
    nl_tabmap_scatter_add(f->state, dy, dx);
    return 0;
}

const nl_fdef nl_fdef_pad = {
    .name = "pad",
    .doc = "y = x padded on its last axes; pad_width is a flat list of {before, after} pairs, the last pair for "
           "the last axis ({1, 2} pads the last axis, {2, 2, 1, 1} the last two). mode 'constant' fills "
           "constant_value, 'reflect' mirrors about the edge elements, 'repeat' repeats the edge elements",
    .in_names = "x", .n_in = 1, .n_out = 1,
    .n_args = 3, .args = pad_args,
    .setup = pad_setup, .forward = pad_forward, .backward = tabmap_backward, .destroy = tabmap_destroy,
};

/* ---- shift ---- */

enum { SH_SHIFTS, SH_MODE };
static const nl_argdef shift_args[] = {
    {"shifts", NL_ARG_INTS, "nil", NULL},
    {"border_mode", NL_ARG_CHOICE, "'nearest'", "nearest|reflect"},
};

static int shift_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0);
    const int nd = x->ndim;
    char s1[160];
    const int ns = nl_arg_given(f, SH_SHIFTS) ? nl_arg_len(f, SH_SHIFTS) : 0;
    if (ns > nd)
        return nl_error("argument 'shifts' has %d entries for a %d-d input of shape %s", ns, nd, nl_shape_str(s1, nd, x->shape));
    const bool reflect = nl_arg_int(f, SH_MODE) == 1;
    nl_tabmap *m = tabmap_new(f, nd, x->shape);
    if (!m) return -1;
    int64_t xst[NL_MAX_NDIM];
    nl_row_strides(nd, x->shape, xst);
    for (int k = 0; k < nd; k++) {
        const int64_t n = x->shape[k];
        const int ks = k - (nd - ns);
        const int64_t sh = ks >= 0 ? -nl_arg_at(f, SH_SHIFTS, ks) : 0;
        for (int64_t i = 0; i < n; i++) {
            int64_t j;
            if (reflect) {
                int64_t a = n > 1 ? llabs(i + 2 * n + sh) % (2 * n) : 0;
                j = a >= n ? 2 * n - 1 - a : a;
            } else {
                j = i + sh;
                j = j < 0 ? 0 : j >= n ? n - 1 : j;
            }
            m->tab[k][i] = j * xst[k];
        }
    }
    nl_set_out_shape(f, 0, nd, x->shape);
    return 0;
}

/* x: any shape; y[i] = x[i - shifts] per axis, the border by the mode */
static int shift_forward(nl_func *f) {
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(float *, y, nl_out_data(f, 0));
    nl_tabmap_gather(f->state, x, y, 0.0f);
    return 0;
}

const nl_fdef nl_fdef_shift = {
    .name = "shift",
    .doc = "y[i] = x[i - shifts] per axis (shifts align with the last axes; nil = no shift); positions past the "
           "border take the nearest edge element ('nearest') or the mirror image ('reflect')",
    .in_names = "x", .n_in = 1, .n_out = 1,
    .n_args = 2, .args = shift_args,
    .setup = shift_setup, .forward = shift_forward, .backward = tabmap_backward, .destroy = tabmap_destroy,
};

/* ==== interpolate ====================================================================== */

/* IP_*, interp_plan and the per-corner math (nl_interp_corner): index_plans.h (shared with
 * cuda/interpolate.cu) */
static const nl_argdef interpolate_args[] = {
    {"scale", NL_ARG_FLOATS, "nil", NULL},
    {"output_size", NL_ARG_INTS, "nil", NULL},
    {"mode", NL_ARG_CHOICE, "'linear'", "linear|nearest"},
    {"align_corners", NL_ARG_BOOL, "false", NULL},
    {"half_pixel", NL_ARG_BOOL, "false", NULL},
    {"half_pixel_for_nn", NL_ARG_BOOL, "false", NULL},
    {"channel_last", NL_ARG_BOOL, "false", NULL},
};

static void interp_destroy(nl_func *f) {
    interp_plan *p = f->state;
    if (!p) return;
    free(p->i1); free(p->i2); free(p->w);
    free(p);
}

static int interpolate_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0);
    const int nd = x->ndim;
    char s1[160];
    const bool has_scale = nl_arg_given(f, IP_SCALE), has_size = nl_arg_given(f, IP_SIZE);
    if (!has_scale && !has_size) return nl_error("either 'scale' or 'output_size' must be given");
    if (has_scale && has_size) return nl_error("give 'scale' or 'output_size', not both");
    const int ns = nl_arg_len(f, has_size ? IP_SIZE : IP_SCALE);
    const bool channel_last = nl_arg_bool(f, IP_CHANNEL_LAST);
    const bool align = nl_arg_bool(f, IP_ALIGN), half = nl_arg_bool(f, IP_HALF), half_nn = nl_arg_bool(f, IP_HALF_NN);
    if (ns < 1 || ns > IP_MAX_SPATIAL)
        return nl_error("%d spatial axes requested; 1-, 2- and 3-d interpolation are implemented", ns);
    if (ns + (channel_last ? 1 : 0) > nd)
        return nl_error("%d spatial axes%s do not fit a %d-d input of shape %s", ns,
                        channel_last ? " plus the channel axis" : "", nd, nl_shape_str(s1, nd, x->shape));
    if (align && half) return nl_error("align_corners and half_pixel cannot both be true");
    interp_plan *p = calloc(1, sizeof *p);
    if (!p) return nl_error("out of memory");
    f->state = p;
    p->ns = ns;
    p->nearest = nl_arg_int(f, IP_MODE) == 1;
    nl_row_strides(nd, x->shape, p->xst);
    int64_t oshape[NL_MAX_NDIM];
    memcpy(oshape, x->shape, (size_t)nd * sizeof(int64_t));
    const int first = nd - ns - (channel_last ? 1 : 0);
    for (int s = 0; s < ns; s++) {
        const int ax = first + s;
        const int64_t is = x->shape[ax];
        int64_t os;
        if (has_size) os = nl_arg_at(f, IP_SIZE, s);
        else {
            double sc = f->args[IP_SCALE].v[s];
            if (!(sc > 0) || sc * (double)is > 1e12)
                return nl_error("argument 'scale' entry %d is %g; scales must be positive (and not absurdly large)", s + 1, sc);
            os = (int64_t)floor(sc * (double)is);
        }
        if (os < 1)
            return nl_error("output size %lld on axis %d (input shape %s); sizes must be at least 1", (long long)os, ax + 1,
                            nl_shape_str(s1, nd, x->shape));
        if (is < 1) return nl_error("cannot interpolate axis %d of size 0 (input shape %s)", ax + 1, nl_shape_str(s1, nd, x->shape));
        oshape[ax] = os;
        p->axis[s] = ax;
        p->at[s] = p->n_tab;
        p->n_tab += os;
    }
    p->i1 = malloc((size_t)p->n_tab * sizeof(int64_t));
    p->i2 = malloc((size_t)p->n_tab * sizeof(int64_t));
    p->w = malloc((size_t)p->n_tab * sizeof(float));
    if (!p->i1 || !p->i2 || !p->w) return nl_error("out of memory");
    for (int s = 0; s < ns; s++) {
        const int64_t is = x->shape[p->axis[s]], os = oshape[p->axis[s]];
        int64_t *i1 = p->i1 + p->at[s], *i2 = p->i2 + p->at[s];
        float *w = p->w + p->at[s];
        /* NNabla's coordinate transform, in float as NNabla computes it */
        const float scale = os <= 1 ? 0.0f : align ? (float)(is - 1) / (float)(os - 1) : (float)is / (float)os;
        for (int64_t o = 0; o < os; o++) {
            if (p->nearest) {
                float sc = half_nn ? (float)is / (float)os : scale;
                float fx = half_nn ? sc * ((float)o + 0.5f)
                                   : half ? fmaxf(0.0f, sc * ((float)o + 0.5f) - 0.5f) : sc * (float)o;
                int64_t ix = (int64_t)fx;
                i1[o] = ix < is - 1 ? ix : is - 1;
                i2[o] = i1[o];
                w[o] = 0;
            } else {
                float fx = half ? fmaxf(0.0f, scale * ((float)o + 0.5f) - 0.5f) : scale * (float)o;
                int64_t x1 = (int64_t)fx;
                if (x1 > is - 1) x1 = is - 1;
                i1[o] = x1;
                i2[o] = x1 + 1 < is - 1 ? x1 + 1 : is - 1;
                w[o] = fx - (float)x1;
            }
        }
    }
    nl_set_out_shape(f, 0, nd, oshape);
    return 0;
}

/* Walks y; for each element calls the corner loop over x. dir 0: y = sum w x; dir 1:
 * dx += w dy. */
static void interp_run(const nl_func *f, const float *src, float *dst, bool backward) {
    const interp_plan *p = f->state;
    const nl_var *y = f->out[0];
    const int nd = y->ndim;
    const int64_t total = y->size;
    if (total == 0) return;
    int64_t idx[NL_MAX_NDIM] = {0};
    bool spatial[NL_MAX_NDIM] = {false};
    for (int s = 0; s < p->ns; s++) spatial[p->axis[s]] = true;
    const int corners = p->nearest ? 1 : 1 << p->ns;
    for (int64_t j = 0; j < total; j++) {
        int64_t base = 0, o[IP_MAX_SPATIAL];
        for (int d = 0; d < nd; d++) if (!spatial[d]) base += idx[d] * p->xst[d];
        for (int s = 0; s < p->ns; s++) o[s] = idx[p->axis[s]];
        float acc = 0;
        for (int c = 0; c < corners; c++) {
            int64_t off = base;
            const float wgt = nl_interp_corner(p, p->i1, p->i2, p->w, o, c, &off);
            if (backward) dst[off] += wgt * src[j];
            else acc += wgt * src[off];
        }
        if (!backward) dst[j] = acc;
        for (int d = nd - 1; d >= 0; d--) {
            if (++idx[d] < y->shape[d]) break;
            idx[d] = 0;
        }
    }
}

/* x: (..., spatial...); y: (..., output_size...), linear or nearest resampling */
static int interpolate_forward(nl_func *f) {
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(float *, y, nl_out_data(f, 0));
    interp_run(f, x, y, false);
    return 0;
}

/* dy: y's shape; dx += the interpolation weights times dy */
static int interpolate_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    NL_PTR(float *, dx, nl_in_grad(f, 0, accum[0]));
    nl_grad_clear(dx, nl_in(f, 0)->size, accum[0]);
    interp_run(f, dy, dx, true);
    return 0;
}

const nl_fdef nl_fdef_interpolate = {
    .name = "interpolate",
    .doc = "y = x resized on its last len(output_size) (or len(scale)) axes, 1 to 3 of them (before the channel "
           "axis with channel_last); output_size[i] = floor(scale[i] * size) when scale is given. mode 'linear' or "
           "'nearest'; the source coordinate is o*(in-1)/(out-1) with align_corners, (o+0.5)*in/out-0.5 with "
           "half_pixel, else o*in/out (NNabla's rules, half_pixel_for_nn: the old nearest (o+0.5)*in/out)",
    .in_names = "x", .n_in = 1, .n_out = 1,
    .n_args = 7, .args = interpolate_args,
    .setup = interpolate_setup, .forward = interpolate_forward, .backward = interpolate_backward,
    .destroy = interp_destroy,
};

/* ==== arange, linspace, constant: no inputs ============================================ */

static int no_backward(nl_func *f, const bool *prop, const bool *accum) {
    (void)f; (void)prop; (void)accum;
    return 0;
}

static const nl_argdef arange_args[] = {
    {"start", NL_ARG_FLOAT, "nil", NULL},
    {"stop", NL_ARG_FLOAT, "nil", NULL},
    {"step", NL_ARG_FLOAT, "1", NULL},
};

static int arange_setup(nl_func *f) {
    if (!nl_arg_given(f, AR_START) || !nl_arg_given(f, AR_STOP))
        return nl_error("arguments 'start' and 'stop' are required (the range is inclusive: F.arange(1, 5) is 1, 2, 3, 4, 5)");
    double a = nl_arg_float(f, AR_START), b = nl_arg_float(f, AR_STOP), st = nl_arg_float(f, AR_STEP);
    if (st == 0 || !isfinite(st) || !isfinite(a) || !isfinite(b))
        return nl_error("start %g, stop %g, step %g: the step must be nonzero and all finite", a, b, st);
    double n = floor((b - a) / st + 1e-9) + 1;
    if (n < 0) n = 0;
    if (n > 4e9) return nl_error("start %g, stop %g, step %g give %.0f elements (too many)", a, b, st, n);
    int64_t shape[1] = {(int64_t)n};
    nl_set_out_shape(f, 0, 1, shape);
    return 0;
}

/* y: (n) = start, start + step, ... up to stop inclusive */
static int arange_forward(nl_func *f) {
    NL_PTR(float *, y, nl_out_data(f, 0));
    double a = nl_arg_float(f, AR_START), st = nl_arg_float(f, AR_STEP);
    for (int64_t i = 0; i < nl_out(f, 0)->size; i++) y[i] = nl_arange_at(a, st, i);
    return 0;
}

const nl_fdef nl_fdef_arange = {
    .name = "arange",
    .doc = "y = start, start + step, ... through stop inclusive (a Lua range: F.arange(1, 5) has 5 elements; "
           "NNabla's arange(0, 5) excludes 5 and equals F.arange(0, 4)); no inputs",
    .in_names = "", .n_in = 0, .n_out = 1,
    .n_args = 3, .args = arange_args,
    .setup = arange_setup, .forward = arange_forward, .backward = no_backward,
};

static const nl_argdef linspace_args[] = {
    {"start", NL_ARG_FLOAT, "nil", NULL},
    {"stop", NL_ARG_FLOAT, "nil", NULL},
    {"num", NL_ARG_INT, "nil", NULL},
};

static int linspace_setup(nl_func *f) {
    if (!nl_arg_given(f, LS_START) || !nl_arg_given(f, LS_STOP) || !nl_arg_given(f, LS_NUM))
        return nl_error("arguments 'start', 'stop' and 'num' are required");
    int64_t n = nl_arg_int(f, LS_NUM);
    if (n < 0) return nl_error("argument 'num' is %lld; it must be >= 0", (long long)n);
    nl_set_out_shape(f, 0, 1, &n);
    return 0;
}

/* y: (num) evenly spaced from start to stop, both included */
static int linspace_forward(nl_func *f) {
    NL_PTR(float *, y, nl_out_data(f, 0));
    double a = nl_arg_float(f, LS_START), b = nl_arg_float(f, LS_STOP);
    const int64_t n = nl_out(f, 0)->size;
    for (int64_t i = 0; i < n; i++) y[i] = nl_linspace_at(a, b, n, i);
    return 0;
}

const nl_fdef nl_fdef_linspace = {
    .name = "linspace",
    .doc = "y = num evenly spaced numbers from start to stop, both included; no inputs",
    .in_names = "", .n_in = 0, .n_out = 1,
    .n_args = 3, .args = linspace_args,
    .setup = linspace_setup, .forward = linspace_forward, .backward = no_backward,
};

static const nl_argdef constant_args[] = {
    {"val", NL_ARG_FLOAT, "0", NULL},
    {"shape", NL_ARG_INTS, "{}", NULL},
};

static int constant_setup(nl_func *f) {
    char s1[160];
    int n = nl_arg_len(f, CO_SHAPE);
    if (n > NL_MAX_NDIM) return nl_error("argument 'shape' has %d entries (at most %d axes)", n, NL_MAX_NDIM);
    int64_t shape[NL_MAX_NDIM];
    for (int k = 0; k < n; k++) shape[k] = nl_arg_at(f, CO_SHAPE, k);
    for (int k = 0; k < n; k++)
        if (shape[k] < 0) return nl_error("argument 'shape' %s has a negative size", nl_shape_str(s1, n, shape));
    nl_set_out_shape(f, 0, n, shape);
    return 0;
}

/* y: shape, every element val */
static int constant_forward(nl_func *f) {
    NL_PTR(float *, y, nl_out_data(f, 0));
    float v = (float)nl_arg_float(f, CO_VAL);
    for (int64_t i = 0; i < nl_out(f, 0)->size; i++) y[i] = v;
    return 0;
}

const nl_fdef nl_fdef_constant = {
    .name = "constant",
    .doc = "y = an array of the given shape ({} = a 0-d scalar) filled with val; no inputs",
    .in_names = "", .n_in = 0, .n_out = 1,
    .n_args = 2, .args = constant_args,
    .setup = constant_setup, .forward = constant_forward, .backward = no_backward,
};
