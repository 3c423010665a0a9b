/*
 * shape.c - shape manipulation: reshape (one -1 inferred; data copied) and slice (Lua
 * conventions: 1-based inclusive start/stop per axis, negative positions from the end,
 * positive or negative steps). F.slice_lua turns x[{ {}, {1, 4} }] into F.slice.
 */
#include "../src/function.h"
#include <stdlib.h>
#include <string.h>

/* ---- reshape ---------------------------------------------------------------------- */

enum { RS_SHAPE, RS_INPLACE };
static const nl_argdef reshape_args[] = {
    {"shape", NL_ARG_INTS, "nil", NULL},
    {"inplace", NL_ARG_BOOL, "true", NULL},
};

static int reshape_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0);
    if (!nl_arg_given(f, RS_SHAPE)) return nl_error("argument 'shape' is required (a list such as {2, -1})");
    int n = nl_arg_len(f, RS_SHAPE);
    if (n > NL_MAX_NDIM) return nl_error("argument 'shape' has %d entries (at most %d axes)", n, NL_MAX_NDIM);
    int64_t shape[NL_MAX_NDIM];
    int unknown = -1;
    int64_t known = 1;
    char s1[160], s2[160];
    for (int k = 0; k < n; k++) {
        int64_t d = nl_arg_at(f, RS_SHAPE, k);
        shape[k] = d;
        if (d == -1) {
            if (unknown >= 0)
                return nl_error("argument 'shape' %s has more than one -1", nl_shape_str(s1, n, shape));
            unknown = k;
        } else if (d < 0) {
            for (int j = k + 1; j < n; j++) shape[j] = nl_arg_at(f, RS_SHAPE, j);
            return nl_error("argument 'shape' %s has a negative size at position %d",
                            nl_shape_str(s1, n, shape), k + 1);
        } else if (d != 0 && known > INT64_MAX / d) {
            for (int j = k + 1; j < n; j++) shape[j] = nl_arg_at(f, RS_SHAPE, j);
            bool zero = false;
            for (int j = k + 1; j < n; j++) zero = zero || shape[j] == 0;
            if (!zero)
                return nl_error("cannot reshape %s (%lld elements) into %s (too many elements)",
                                nl_shape_str(s1, x->ndim, x->shape), (long long)x->size, nl_shape_str(s2, n, shape));
            known = 0;
            break;
        } else {
            known *= d;
        }
    }
    if (unknown >= 0) {
        if (known == 0 || x->size % known != 0)
            return nl_error("cannot reshape %s (%lld elements) into %s",
                            nl_shape_str(s1, x->ndim, x->shape), (long long)x->size, nl_shape_str(s2, n, shape));
        shape[unknown] = x->size / known;
    } else if (known != x->size) {
        return nl_error("cannot reshape %s (%lld elements) into %s (%lld elements)",
                        nl_shape_str(s1, x->ndim, x->shape), (long long)x->size,
                        nl_shape_str(s2, n, shape), (long long)known);
    }
    nl_set_out_shape(f, 0, n, shape);
    return 0;
}

/* x: any shape (size S); y: the new shape (size S), same row-major order */
static int reshape_forward(nl_func *f) {
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(float *, y, nl_out_data(f, 0));
    memcpy(y, x, (size_t)nl_in(f, 0)->size * sizeof(float));
    return 0;
}

/* dy: the new shape (size S); dx: x's shape (size S) */
static int reshape_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    NL_PTR(float *, dx, nl_in_grad(f, 0, accum[0]));
    int64_t n = nl_in(f, 0)->size;
    if (accum[0]) for (int64_t i = 0; i < n; i++) dx[i] += dy[i];
    else memcpy(dx, dy, (size_t)n * sizeof(float));
    return 0;
}

const nl_fdef nl_fdef_reshape = {
    .name = "reshape",
    .doc = "y = x with another shape of the same size (one -1 entry is inferred); inplace is accepted and ignored (data is copied)",
    .in_names = "x", .n_in = 1, .n_out = 1,
    .n_args = 2, .args = reshape_args,
    .setup = reshape_setup, .forward = reshape_forward, .backward = reshape_backward,
};

/* ---- slice ------------------------------------------------------------------------ */

enum { SL_START, SL_STOP, SL_STEP };
static const nl_argdef slice_args[] = {
    {"start", NL_ARG_INDEX, "nil", NULL},
    {"stop", NL_ARG_INDEX, "nil", NULL},
    {"step", NL_ARG_INDEX, "nil", NULL},
};

/* Per axis: first element (0-based), step, count; computed in setup. */
typedef struct slice_plan {
    int ndim;
    int64_t start[NL_MAX_NDIM], step[NL_MAX_NDIM], count[NL_MAX_NDIM];
    int64_t xstride[NL_MAX_NDIM];
} slice_plan;

static void slice_destroy(nl_func *f) { free(f->state); }

static int slice_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0);
    int nd = x->ndim;
    char s1[160];
    for (int k = SL_START; k <= SL_STEP; k++)
        if (nl_arg_given(f, k) && nl_arg_len(f, k) > nd)
            return nl_error("argument '%s' has %d entries for a %d-d input of shape %s",
                            slice_args[k].name, nl_arg_len(f, k), nd, nl_shape_str(s1, nd, x->shape));
    slice_plan *p = calloc(1, sizeof *p);
    if (!p) return nl_error("out of memory");
    f->state = p;
    p->ndim = nd;
    int64_t oshape[NL_MAX_NDIM];
    int64_t stride = 1;
    for (int d = nd - 1; d >= 0; d--) { p->xstride[d] = stride; stride *= x->shape[d]; }
    for (int d = 0; d < nd; d++) {
        int64_t n = x->shape[d];
        bool has_start = nl_arg_given(f, SL_START) && d < nl_arg_len(f, SL_START);
        bool has_stop = nl_arg_given(f, SL_STOP) && d < nl_arg_len(f, SL_STOP);
        int64_t step = (nl_arg_given(f, SL_STEP) && d < nl_arg_len(f, SL_STEP)) ? nl_arg_at(f, SL_STEP, d) : 1;
        if (step == 0)
            return nl_error("step 0 on axis %d (input shape %s): steps must be nonzero", d + 1,
                            nl_shape_str(s1, nd, x->shape));
        /* Lua positions: 1..n or -n..-1; defaults cover the whole axis in step's direction. */
        int64_t a = has_start ? nl_arg_at(f, SL_START, d) : (step > 0 ? 1 : n);
        int64_t b = has_stop ? nl_arg_at(f, SL_STOP, d) : (step > 0 ? n : 1);
        if (n == 0 && !has_start && !has_stop) {
            p->start[d] = 0; p->step[d] = step; p->count[d] = 0; oshape[d] = 0;
            continue;
        }
        int64_t a0 = a < 0 ? n + a : a - 1, b0 = b < 0 ? n + b : b - 1;
        if (a == 0 || a0 < 0 || a0 >= n)
            return nl_error("start %lld is out of range on axis %d of size %lld (input shape %s; positions are 1..%lld or -%lld..-1)",
                            (long long)a, d + 1, (long long)n, nl_shape_str(s1, nd, x->shape), (long long)n, (long long)n);
        if (b == 0 || b0 < 0 || b0 >= n)
            return nl_error("stop %lld is out of range on axis %d of size %lld (input shape %s; positions are 1..%lld or -%lld..-1)",
                            (long long)b, d + 1, (long long)n, nl_shape_str(s1, nd, x->shape), (long long)n, (long long)n);
        if (step > 0 && a0 > b0)
            return nl_error("start %lld comes after stop %lld on axis %d with step %lld (input shape %s)",
                            (long long)a, (long long)b, d + 1, (long long)step, nl_shape_str(s1, nd, x->shape));
        if (step < 0 && a0 < b0)
            return nl_error("start %lld comes before stop %lld on axis %d with negative step %lld (input shape %s)",
                            (long long)a, (long long)b, d + 1, (long long)step, nl_shape_str(s1, nd, x->shape));
        p->start[d] = a0;
        p->step[d] = step;
        p->count[d] = (b0 - a0) / step + 1;   /* same sign: exact floor */
        oshape[d] = p->count[d];
    }
    nl_set_out_shape(f, 0, nd, oshape);
    return 0;
}

/* Walks the output in row-major order. The last axis, when its step is 1, is copied as
 * contiguous runs of `run` elements; the leading `nd` axes advance one by one. */
typedef struct slice_iter {
    int nd;            /* number of axes advanced by the odometer */
    int64_t run;       /* elements per contiguous run */
    int64_t base;      /* input offset of the first element */
} slice_iter;

static slice_iter slice_iter_make(const slice_plan *p) {
    slice_iter it = {p->ndim, 1, 0};
    for (int d = 0; d < p->ndim; d++) it.base += p->start[d] * p->xstride[d];
    int d = p->ndim - 1;
    if (d >= 0 && p->step[d] == 1) { it.run = p->count[d]; it.nd = d; }
    return it;
}

/* x: (n_1, ..., n_k); y: (count_1, ..., count_k), y[j] = x[start + j * step] per axis */
static int slice_forward(nl_func *f) {
    const slice_plan *p = f->state;
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(float *, y, nl_out_data(f, 0));
    int64_t total = nl_out(f, 0)->size;
    if (total == 0) return 0;
    slice_iter it = slice_iter_make(p);
    int64_t idx[NL_MAX_NDIM] = {0};
    int64_t off = it.base;
    for (int64_t iy = 0; iy < total; iy += it.run) {
        if (it.run == 1) y[iy] = x[off];
        else memcpy(y + iy, x + off, (size_t)it.run * sizeof(float));
        for (int d = it.nd - 1; d >= 0; d--) {
            off += p->step[d] * p->xstride[d];
            if (++idx[d] < p->count[d]) break;
            off -= p->step[d] * p->xstride[d] * p->count[d];
            idx[d] = 0;
        }
    }
    return 0;
}

/* dy: (count_1, ..., count_k); dx: (n_1, ..., n_k), zero outside the slice */
static int slice_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    const slice_plan *p = f->state;
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    NL_PTR(float *, dx, nl_in_grad(f, 0, accum[0]));
    if (!accum[0]) memset(dx, 0, (size_t)nl_in(f, 0)->size * sizeof(float));
    int64_t total = nl_out(f, 0)->size;
    if (total == 0) return 0;
    slice_iter it = slice_iter_make(p);
    int64_t idx[NL_MAX_NDIM] = {0};
    int64_t off = it.base;
    for (int64_t iy = 0; iy < total; iy += it.run) {
        for (int64_t j = 0; j < it.run; j++) dx[off + j] += dy[iy + j];
        for (int d = it.nd - 1; d >= 0; d--) {
            off += p->step[d] * p->xstride[d];
            if (++idx[d] < p->count[d]) break;
            off -= p->step[d] * p->xstride[d] * p->count[d];
            idx[d] = 0;
        }
    }
    return 0;
}

const nl_fdef nl_fdef_slice = {
    .name = "slice",
    .doc = "y = x[start:stop:step] per axis; start/stop are 1-based inclusive positions (negative from the end), "
           "nil or a short list covers the remaining axes whole; negative steps walk backwards (start >= stop)",
    .in_names = "x", .n_in = 1, .n_out = 1,
    .n_args = 3, .args = slice_args,
    .setup = slice_setup, .forward = slice_forward, .backward = slice_backward, .destroy = slice_destroy,
};
