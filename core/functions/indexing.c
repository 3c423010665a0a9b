/*
 * indexing.c - functions whose inputs or outputs hold positions, all 1-based in Lua
 * (negative positions count from the end, -1 is the last), stored as floats:
 *   sort(x, axis=-1, reverse=false, with_index=false, only_index=false)
 *   gather(x, indices, axis=1, batch_dims=0), gather_nd(x, indices)
 *   scatter_nd(data, indices, [out], shape=nil, add=false), scatter_add(x0, indices, x1, axis=1)
 * and one_hot(x, shape), whose x holds 0-based class ids like softmax_cross_entropy's
 * labels (ids are classes, not positions). Index inputs get zero gradients.
 */
#include "nd_view.h"
#include "index_plans.h"
#include "labels.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ==== sort ============================================================================= */

/* SO_*, sort_item, sort_plan and the order (nl_sort_key): index_plans.h (shared with cuda/sort.cu) */
static const nl_argdef sort_args[] = {
    {"axis", NL_ARG_AXIS, "-1", NULL},
    {"reverse", NL_ARG_BOOL, "false", NULL},
    {"with_index", NL_ARG_BOOL, "false", NULL},
    {"only_index", NL_ARG_BOOL, "false", NULL},
};

static void sort_destroy(nl_func *f) {
    sort_plan *p = f->state;
    if (!p) return;
    free(p->perm);
    free(p->items);
    free(p);
}

/* By key (nl_sort_key: NaN last), equal keys in source order (stable). */
static int cmp_key(const void *a, const void *b) {
    const sort_item *x = a, *y = b;
    if (x->k != y->k) return x->k < y->k ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

static int sort_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0);
    int a;
    if (nl_norm_axis("axis", nl_arg_int(f, SO_AXIS), x->ndim, &a)) return -1;
    sort_plan *p = calloc(1, sizeof *p);
    if (!p) return nl_error("out of memory");
    f->state = p;
    p->A = 1; p->B = 1; p->N = x->shape[a];
    for (int d = 0; d < a; d++) p->A *= x->shape[d];
    for (int d = a + 1; d < x->ndim; d++) p->B *= x->shape[d];
    p->reverse = nl_arg_bool(f, SO_REVERSE);
    p->perm = malloc((size_t)(x->size > 0 ? x->size : 1) * sizeof(int64_t));
    p->items = malloc((size_t)(p->N > 0 ? p->N : 1) * sizeof(sort_item));
    if (!p->perm || !p->items) return nl_error("out of memory");
    bool only = nl_arg_bool(f, SO_ONLY_INDEX), with = nl_arg_bool(f, SO_WITH_INDEX);
    if (only) { p->n_val = -1; p->n_idx = 0; }
    else if (with) { p->n_val = 0; p->n_idx = 1; }
    else { p->n_val = 0; p->n_idx = -1; }
    int n_out = (p->n_val >= 0) + (p->n_idx >= 0);
    if (nl_set_n_out(f, n_out)) return -1;
    for (int o = 0; o < n_out; o++) nl_set_out_shape(f, o, x->ndim, x->shape);
    return 0;
}

/* x: (A, N, B); values: x sorted along N (ascending, or descending with reverse);
 * indices: the 1-based source positions along N */
static int sort_forward(nl_func *f) {
    sort_plan *p = f->state;
    NL_PTR(const float *, x, nl_in_data(f, 0));
    float *yv = NULL, *yi = NULL;
    if (p->n_val >= 0) { NL_PTR(float *, t, nl_out_data(f, p->n_val)); yv = t; }
    if (p->n_idx >= 0) { NL_PTR(float *, t, nl_out_data(f, p->n_idx)); yi = t; }
    const int64_t N = p->N, B = p->B;
    for (int64_t a = 0; a < p->A; a++)
        for (int64_t b = 0; b < B; b++) {
            const int64_t base = a * N * B + b;
            for (int64_t i = 0; i < N; i++) {
                const float v = x[base + i * B];
                p->items[i].v = v;
                p->items[i].k = nl_sort_key(v, p->reverse);
                p->items[i].i = i;
            }
            qsort(p->items, (size_t)N, sizeof(sort_item), cmp_key);
            for (int64_t i = 0; i < N; i++) {
                const int64_t o = base + i * B;
                p->perm[o] = p->items[i].i;
                if (yv) yv[o] = p->items[i].v;
                if (yi) yi[o] = (float)(p->items[i].i + 1);
            }
        }
    return 0;
}

/* dvalues: (A, N, B); dx at each source position = dvalues at its sorted position */
static int sort_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    const sort_plan *p = f->state;
    NL_PTR(float *, dx, nl_in_grad(f, 0, accum[0]));
    nl_grad_clear(dx, nl_in(f, 0)->size, accum[0]);
    if (p->n_val < 0) return 0;
    NL_PTR(const float *, dy, nl_out_grad(f, p->n_val));
    const int64_t N = p->N, B = p->B;
    for (int64_t a = 0; a < p->A; a++)
        for (int64_t i = 0; i < N; i++)
            for (int64_t b = 0; b < B; b++) {
                const int64_t o = (a * N + i) * B + b;
                dx[(a * N + p->perm[o]) * B + b] += dy[o];
            }
    return 0;
}

const nl_fdef nl_fdef_sort = {
    .name = "sort",
    .doc = "y = x sorted along axis (1-based, default -1), ascending or descending with reverse (stable, NaN last). "
           "with_index returns (values, indices), only_index returns indices alone: the 1-based source positions "
           "along the axis, as floats",
    .in_names = "x", .n_in = 1, .n_out = -1,
    .n_args = 4, .args = sort_args,
    .setup = sort_setup, .forward = sort_forward, .backward = sort_backward, .destroy = sort_destroy,
};

/* ==== one_hot ========================================================================== */

/* OH_SHAPE: index_plans.h */
static const nl_argdef one_hot_args[] = {{"shape", NL_ARG_INTS, "nil", NULL}};

static int one_hot_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0);
    char s1[160], s2[160];
    if (!nl_arg_given(f, OH_SHAPE)) return nl_error("argument 'shape' is required (the number of classes per index axis)");
    const int m = nl_arg_len(f, OH_SHAPE);
    int64_t shape[NL_MAX_ARG_LEN];
    for (int k = 0; k < m; k++) shape[k] = nl_arg_at(f, OH_SHAPE, k);
    if (x->ndim < 1 || x->shape[x->ndim - 1] != m)
        return nl_error("x %s must end in an axis of size %d, one class id per entry of shape %s",
                        nl_shape_str(s1, x->ndim, x->shape), m, nl_shape_str(s2, m, shape));
    for (int k = 0; k < m; k++)
        if (shape[k] < 1) return nl_error("argument 'shape' %s must hold positive class counts", nl_shape_str(s2, m, shape));
    const int ond = x->ndim - 1 + m;
    if (ond > NL_MAX_NDIM) return nl_error("the output would have %d axes (at most %d)", ond, NL_MAX_NDIM);
    int64_t oshape[NL_MAX_NDIM];
    for (int k = 0; k < x->ndim - 1; k++) oshape[k] = x->shape[k];
    for (int k = 0; k < m; k++) oshape[x->ndim - 1 + k] = shape[k];
    nl_set_out_shape(f, 0, ond, oshape);
    return 0;
}

/* x: (..., m) class ids; y: (..., shape...), 1 at the ids, 0 elsewhere */
static int one_hot_forward(nl_func *f) {
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(float *, y, nl_out_data(f, 0));
    const int m = nl_arg_len(f, OH_SHAPE);
    int64_t block = 1;
    for (int k = 0; k < m; k++) block *= nl_arg_at(f, OH_SHAPE, k);
    const int64_t rows = m ? nl_in(f, 0)->size / m : 0;
    memset(y, 0, (size_t)nl_out(f, 0)->size * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        int64_t flat = 0;
        bool inside = true;
        for (int k = 0; k < m; k++) {
            const int64_t n = nl_arg_at(f, OH_SHAPE, k);
            int64_t c;
            if (!nl_one_hot_class(x[r * m + k], n, &c)) return nl_one_hot_bad(x[r * m + k], r * m + k);
            if (c >= n) inside = false;      /* out of range: an all-zero row */
            flat = flat * n + c;
        }
        if (inside) y[r * block + flat] = 1;
    }
    return 0;
}

static int one_hot_backward(nl_func *f, const bool *prop, const bool *accum) {
    nl_no_grad_input(f, 0, prop, accum);   /* the ids */
    return 0;
}

const nl_fdef nl_fdef_one_hot = {
    .name = "one_hot",
    .doc = "y = one-hot vectors: x (..., m) holds m 0-based class ids per row (like softmax_cross_entropy's labels; "
           "-n..-1 wrap around, other out-of-range ids give an all-zero row); y has shape x.shape[1..-2] .. shape",
    .in_names = "x", .n_in = 1, .n_out = 1,
    .n_args = 1, .args = one_hot_args,
    .setup = one_hot_setup, .forward = one_hot_forward, .backward = one_hot_backward,
};

/* ==== gather =========================================================================== */

/* GA_AXIS, GA_BATCH_DIMS: index_plans.h */
static const nl_argdef gather_args[] = {
    {"axis", NL_ARG_AXIS, "1", NULL},
    {"batch_dims", NL_ARG_INT, "0", NULL},
};

/* gather_plan: index_plans.h */

static void free_state(nl_func *f) { free(f->state); }

static int gather_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0), *ix = nl_in(f, 1);
    char s1[160], s2[160];
    const int64_t bd = nl_arg_int(f, GA_BATCH_DIMS);
    int a;
    if (nl_norm_axis("axis", nl_arg_int(f, GA_AXIS), x->ndim, &a)) return -1;
    if (bd < 0 || bd > ix->ndim || bd > a)
        return nl_error("batch_dims %lld must be in 0..%d (at most indices' axes and before axis %d)", (long long)bd,
                        ix->ndim < a ? ix->ndim : a, a + 1);
    for (int k = 0; k < bd; k++)
        if (x->shape[k] != ix->shape[k])
            return nl_error("the first %lld axes of x %s and indices %s must agree (batch_dims)", (long long)bd,
                            nl_shape_str(s1, x->ndim, x->shape), nl_shape_str(s2, ix->ndim, ix->shape));
    const int ond = a + (ix->ndim - (int)bd) + (x->ndim - a - 1);
    if (ond > NL_MAX_NDIM) return nl_error("the output would have %d axes (at most %d)", ond, NL_MAX_NDIM);
    int64_t oshape[NL_MAX_NDIM];
    int o = 0;
    for (int k = 0; k < a; k++) oshape[o++] = x->shape[k];
    for (int k = (int)bd; k < ix->ndim; k++) oshape[o++] = ix->shape[k];
    for (int k = a + 1; k < x->ndim; k++) oshape[o++] = x->shape[k];
    nl_set_out_shape(f, 0, ond, oshape);
    gather_plan *p = calloc(1, sizeof *p);
    if (!p) return nl_error("out of memory");
    f->state = p;
    p->axis = a;
    p->Bn = 1; p->Mid = 1; p->I = 1; p->inner = 1; p->n = x->shape[a];
    for (int k = 0; k < bd; k++) p->Bn *= x->shape[k];
    for (int k = (int)bd; k < a; k++) p->Mid *= x->shape[k];
    for (int k = (int)bd; k < ix->ndim; k++) p->I *= ix->shape[k];
    for (int k = a + 1; k < x->ndim; k++) p->inner *= x->shape[k];
    return 0;
}

/* Walks (b, m, i): the y block and the x block (both inner long) they pair. */
#define GATHER_LOOP(p, idx, BODY)                                                              \
    for (int64_t b = 0; b < (p)->Bn; b++)                                                      \
        for (int64_t m = 0; m < (p)->Mid; m++)                                                 \
            for (int64_t i = 0; i < (p)->I; i++) {                                             \
                int64_t src_ = 0;                                                                \
                if (nl_read_index((idx)[b * (p)->I + i], (p)->n, "indices", b * (p)->I + i,    \
                                  (p)->axis, &src_)) return -1;                                \
                const int64_t yo = ((b * (p)->Mid + m) * (p)->I + i) * (p)->inner;             \
                const int64_t xo = ((b * (p)->Mid + m) * (p)->n + src_) * (p)->inner;          \
                BODY;                                                                          \
            }

/* x: (Bn, Mid, n, inner); indices: (Bn, I) positions in 1..n; y: (Bn, Mid, I, inner) */
static int gather_forward(nl_func *f) {
    const gather_plan *p = f->state;
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(const float *, idx, nl_in_data(f, 1));
    NL_PTR(float *, y, nl_out_data(f, 0));
    GATHER_LOOP(p, idx, memcpy(y + yo, x + xo, (size_t)p->inner * sizeof(float)));
    return 0;
}

/* dy: (Bn, Mid, I, inner); dx: x's shape, the dy blocks added at the gathered positions */
static int gather_backward(nl_func *f, const bool *prop, const bool *accum) {
    nl_no_grad_input(f, 1, prop, accum);   /* the indices */
    if (!prop[0]) return 0;
    const gather_plan *p = f->state;
    NL_PTR(const float *, idx, nl_in_data(f, 1));
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    NL_PTR(float *, dx, nl_in_grad(f, 0, accum[0]));
    nl_grad_clear(dx, nl_in(f, 0)->size, accum[0]);
    GATHER_LOOP(p, idx, for (int64_t k = 0; k < p->inner; k++) dx[xo + k] += dy[yo + k]);
    return 0;
}

const nl_fdef nl_fdef_gather = {
    .name = "gather",
    .doc = "y = x gathered along axis (1-based, default 1) at the 1-based positions in indices (negatives from "
           "the end); y has shape x.shape[1..axis-1] .. indices.shape[batch_dims+1..] .. x.shape[axis+1..]; the "
           "first batch_dims axes of x and indices are shared",
    .in_names = "x,indices", .n_in = 2, .n_out = 1,
    .n_args = 2, .args = gather_args,
    .setup = gather_setup, .forward = gather_forward, .backward = gather_backward, .destroy = free_state,
    .grad_in_data = 2,
};

/* ==== gather_nd, scatter_nd: indices (M, Y...) address the first M axes ================ */

/* nd_plan: index_plans.h */

/* Offset of column i's slice in the addressed array. */
static int nd_offset(const nd_plan *p, const float *idx, int64_t i, int64_t *off) {
    int64_t o = 0;
    for (int m = 0; m < p->M; m++) {
        int64_t k = 0;
        if (nl_read_index(idx[m * p->cols + i], p->shape[m], "indices", m * p->cols + i, m, &k)) return -1;
        o += k * p->stride[m];
    }
    *off = o;
    return 0;
}

static int gather_nd_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0), *ix = nl_in(f, 1);
    char s1[160], s2[160];
    if (ix->ndim < 1 || ix->shape[0] < 1 || ix->shape[0] > x->ndim)
        return nl_error("indices %s must be (M, ...) with 1 <= M <= %d, the axes of x %s it addresses",
                        nl_shape_str(s1, ix->ndim, ix->shape), x->ndim, nl_shape_str(s2, x->ndim, x->shape));
    const int M = (int)ix->shape[0];
    const int ond = ix->ndim - 1 + x->ndim - M;
    if (ond > NL_MAX_NDIM) return nl_error("the output would have %d axes (at most %d)", ond, NL_MAX_NDIM);
    int64_t oshape[NL_MAX_NDIM];
    int o = 0;
    for (int k = 1; k < ix->ndim; k++) oshape[o++] = ix->shape[k];
    for (int k = M; k < x->ndim; k++) oshape[o++] = x->shape[k];
    nl_set_out_shape(f, 0, ond, oshape);
    nd_plan *p = calloc(1, sizeof *p);
    if (!p) return nl_error("out of memory");
    f->state = p;
    p->M = M;
    p->cols = nl_shape_size(ix->ndim - 1, ix->shape + 1);
    p->slice = nl_shape_size(x->ndim - M, x->shape + M);
    memcpy(p->shape, x->shape, (size_t)x->ndim * sizeof(int64_t));
    nl_row_strides(x->ndim, x->shape, p->stride);
    return 0;
}

/* x: (X_1..X_M, rest...); indices: (M, Y...); y: (Y..., rest...) = x[indices[:, i]] */
static int gather_nd_forward(nl_func *f) {
    const nd_plan *p = f->state;
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(const float *, idx, nl_in_data(f, 1));
    NL_PTR(float *, y, nl_out_data(f, 0));
    for (int64_t i = 0; i < p->cols; i++) {
        int64_t off;
        if (nd_offset(p, idx, i, &off)) return -1;
        memcpy(y + i * p->slice, x + off, (size_t)p->slice * sizeof(float));
    }
    return 0;
}

/* dy: (Y..., rest...); dx: x's shape, the dy slices added where they came from */
static int gather_nd_backward(nl_func *f, const bool *prop, const bool *accum) {
    nl_no_grad_input(f, 1, prop, accum);   /* the indices */
    if (!prop[0]) return 0;
    const nd_plan *p = f->state;
    NL_PTR(const float *, idx, nl_in_data(f, 1));
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    NL_PTR(float *, dx, nl_in_grad(f, 0, accum[0]));
    nl_grad_clear(dx, nl_in(f, 0)->size, accum[0]);
    for (int64_t i = 0; i < p->cols; i++) {
        int64_t off;
        if (nd_offset(p, idx, i, &off)) return -1;
        for (int64_t k = 0; k < p->slice; k++) dx[off + k] += dy[i * p->slice + k];
    }
    return 0;
}

const nl_fdef nl_fdef_gather_nd = {
    .name = "gather_nd",
    .doc = "y = x at the positions in indices (M, Y...): column i of indices holds 1-based positions (negatives "
           "from the end) on x's first M axes; y has shape Y .. x.shape[M+1..]",
    .in_names = "x,indices", .n_in = 2, .n_out = 1,
    .setup = gather_nd_setup, .forward = gather_nd_forward, .backward = gather_nd_backward, .destroy = free_state,
    .grad_in_data = 2,
};

/* SN_SHAPE, SN_ADD: index_plans.h */
static const nl_argdef scatter_nd_args[] = {
    {"shape", NL_ARG_INTS, "nil", NULL},
    {"add", NL_ARG_BOOL, "false", NULL},
};

static int scatter_nd_setup(nl_func *f) {
    const nl_var *data = nl_in(f, 0), *ix = nl_in(f, 1), *out = f->in[2];
    char s1[160], s2[160], s3[160];
    int64_t shape[NL_MAX_ARG_LEN];
    int n;
    if (nl_arg_given(f, SN_SHAPE)) {
        n = nl_arg_len(f, SN_SHAPE);
        for (int k = 0; k < n; k++) shape[k] = nl_arg_at(f, SN_SHAPE, k);
        if (n > NL_MAX_NDIM) return nl_error("argument 'shape' has %d entries (at most %d axes)", n, NL_MAX_NDIM);
        for (int k = 0; k < n; k++)
            if (shape[k] < 0) return nl_error("argument 'shape' %s has a negative size", nl_shape_str(s1, n, shape));
        if (out && (out->ndim != n || memcmp(out->shape, shape, (size_t)n * sizeof(int64_t)) != 0))
            return nl_error("argument 'shape' %s differs from out's shape %s", nl_shape_str(s1, n, shape),
                            nl_shape_str(s2, out->ndim, out->shape));
    } else if (out) {
        n = out->ndim;
        memcpy(shape, out->shape, (size_t)n * sizeof(int64_t));
    } else {
        return nl_error("argument 'shape' is required when no 'out' input is given");
    }
    if (ix->ndim < 1 || ix->shape[0] < 1 || ix->shape[0] > n)
        return nl_error("indices %s must be (M, ...) with 1 <= M <= %d, the axes of the output shape %s",
                        nl_shape_str(s1, ix->ndim, ix->shape), n, nl_shape_str(s2, n, shape));
    const int M = (int)ix->shape[0], K = ix->ndim - 1;
    bool ok = data->ndim == K + n - M;
    for (int k = 0; ok && k < K; k++) ok = data->shape[k] == ix->shape[k + 1];
    for (int k = 0; ok && k < n - M; k++) ok = data->shape[K + k] == shape[M + k];
    if (!ok)
        return nl_error("data %s must have shape indices.shape[2..] .. shape[M+1..] (indices %s, shape %s, M = %d)",
                        nl_shape_str(s1, data->ndim, data->shape), nl_shape_str(s2, ix->ndim, ix->shape),
                        nl_shape_str(s3, n, shape), M);
    nl_set_out_shape(f, 0, n, shape);
    nd_plan *p = calloc(1, sizeof *p);
    if (!p) return nl_error("out of memory");
    f->state = p;
    p->M = M;
    p->cols = nl_shape_size(K, ix->shape + 1);
    p->slice = nl_shape_size(n - M, shape + M);
    memcpy(p->shape, shape, (size_t)n * sizeof(int64_t));
    nl_row_strides(n, shape, p->stride);
    return 0;
}

/* data: (Y..., rest...); indices: (M, Y...); out: shape (optional); y: shape = out (or 0)
 * with data's slices written (or added) at the positions */
static int scatter_nd_forward(nl_func *f) {
    const nd_plan *p = f->state;
    NL_PTR(const float *, data, nl_in_data(f, 0));
    NL_PTR(const float *, idx, nl_in_data(f, 1));
    NL_PTR(float *, y, nl_out_data(f, 0));
    const int64_t ysize = nl_out(f, 0)->size;
    if (f->in[2]) {
        NL_PTR(const float *, out, nl_in_data(f, 2));
        memcpy(y, out, (size_t)ysize * sizeof(float));
    } else {
        memset(y, 0, (size_t)ysize * sizeof(float));
    }
    const bool add = nl_arg_bool(f, SN_ADD);
    for (int64_t i = 0; i < p->cols; i++) {
        int64_t off;
        if (nd_offset(p, idx, i, &off)) return -1;
        const float *s = data + i * p->slice;
        if (add) for (int64_t k = 0; k < p->slice; k++) y[off + k] += s[k];
        else memcpy(y + off, s, (size_t)p->slice * sizeof(float));
    }
    return 0;
}

/* dy: shape; ddata = dy at the positions; dout = dy, zero at the written positions
 * (unless add) */
static int scatter_nd_backward(nl_func *f, const bool *prop, const bool *accum) {
    nl_no_grad_input(f, 1, prop, accum);   /* the indices */
    const nd_plan *p = f->state;
    const bool has_out = f->in[2] != NULL, do_out = has_out && prop[2];
    if (!prop[0] && !do_out) return 0;
    NL_PTR(const float *, idx, nl_in_data(f, 1));
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    if (prop[0]) {
        NL_PTR(float *, dd, nl_in_grad(f, 0, accum[0]));
        for (int64_t i = 0; i < p->cols; i++) {
            int64_t off;
            if (nd_offset(p, idx, i, &off)) return -1;
            float *d = dd + i * p->slice;
            if (accum[0]) for (int64_t k = 0; k < p->slice; k++) d[k] += dy[off + k];
            else memcpy(d, dy + off, (size_t)p->slice * sizeof(float));
        }
    }
    if (do_out) {
        const int64_t ysize = nl_out(f, 0)->size;
        NL_PTR(float *, dout, nl_in_grad(f, 2, accum[2]));
        NL_PTR(float *, mask, nl_func_scratch(f, 0, ysize + 1));
        for (int64_t j = 0; j < ysize; j++) mask[j] = 1;
        if (!nl_arg_bool(f, SN_ADD))
            for (int64_t i = 0; i < p->cols; i++) {
                int64_t off;
                if (nd_offset(p, idx, i, &off)) return -1;
                for (int64_t k = 0; k < p->slice; k++) mask[off + k] = 0;
            }
        if (accum[2]) for (int64_t j = 0; j < ysize; j++) dout[j] += mask[j] * dy[j];
        else for (int64_t j = 0; j < ysize; j++) dout[j] = mask[j] * dy[j];
    }
    return 0;
}

const nl_fdef nl_fdef_scatter_nd = {
    .name = "scatter_nd",
    .doc = "y = an array of the given shape (a copy of out when given, else zeros) with data (Y..., rest...) "
           "written (or with add, added) at the positions of indices (M, Y...), 1-based on y's first M axes "
           "(negatives from the end); the inverse of gather_nd. Unlike NNabla, out itself is not modified",
    .in_names = "data,indices,out", .n_in = 2, .n_opt_in = 1, .n_out = 1,
    .n_args = 2, .args = scatter_nd_args,
    .setup = scatter_nd_setup, .forward = scatter_nd_forward, .backward = scatter_nd_backward, .destroy = free_state,
    .grad_in_data = 2,
};

/* ==== scatter_add ====================================================================== */

/* SA_AXIS: index_plans.h; the state is the 0-based axis (an int) */
static const nl_argdef scatter_add_args[] = {{"axis", NL_ARG_AXIS, "1", NULL}};

static int scatter_add_setup(nl_func *f) {
    const nl_var *x0 = nl_in(f, 0), *ix = nl_in(f, 1), *x1 = nl_in(f, 2);
    char s1[160], s2[160], s3[160];
    const int nd = x0->ndim;
    int a;
    if (nl_norm_axis("axis", nl_arg_int(f, SA_AXIS), nd, &a)) return -1;
    bool ok = ix->ndim == nd && x1->ndim == nd;
    for (int k = 0; ok && k < nd; k++)
        ok = ix->shape[k] <= x1->shape[k] && (k == a || ix->shape[k] <= x0->shape[k]);
    if (!ok)
        return nl_error("x0 %s, indices %s and x1 %s must have one number of axes, with indices no larger than x1 "
                        "and, off axis %d, than x0", nl_shape_str(s1, nd, x0->shape), nl_shape_str(s2, ix->ndim, ix->shape),
                        nl_shape_str(s3, x1->ndim, x1->shape), a + 1);
    int *st = malloc(sizeof *st);
    if (!st) return nl_error("out of memory");
    *st = a;
    f->state = st;
    nl_set_out_shape(f, 0, nd, x0->shape);
    return 0;
}

/* Walks every position p of indices: q = p with q[axis] = indices[p]; yo is q's offset
 * in x0's shape, x1o is p's offset in x1's shape. */
#define SCATTER_ADD_LOOP(f, idx, BODY)                                                         \
    do {                                                                                       \
        const nl_var *x0_ = nl_in(f, 0), *ix_ = nl_in(f, 1), *x1_ = nl_in(f, 2);               \
        const int nd_ = x0_->ndim, a_ = *(const int *)(f)->state;                              \
        int64_t s0_[NL_MAX_NDIM], s1_[NL_MAX_NDIM], pi_[NL_MAX_NDIM] = {0};                    \
        nl_row_strides(nd_, x0_->shape, s0_);                                                  \
        nl_row_strides(nd_, x1_->shape, s1_);                                                  \
        for (int64_t j_ = 0; j_ < ix_->size; j_++) {                                           \
            int64_t q_ = 0;                                                                      \
            if (nl_read_index((idx)[j_], x0_->shape[a_], "indices", j_, a_, &q_)) return -1;   \
            int64_t yo = 0, x1o = 0;                                                           \
            for (int k_ = 0; k_ < nd_; k_++) {                                                 \
                yo += (k_ == a_ ? q_ : pi_[k_]) * s0_[k_];                                     \
                x1o += pi_[k_] * s1_[k_];                                                      \
            }                                                                                  \
            BODY;                                                                              \
            for (int k_ = nd_ - 1; k_ >= 0; k_--) {                                            \
                if (++pi_[k_] < ix_->shape[k_]) break;                                         \
                pi_[k_] = 0;                                                                   \
            }                                                                                  \
        }                                                                                      \
    } while (0)

/* x0: S; indices: I (I <= x1's shape, and <= S off axis); x1: any shape >= I;
 * y: S = x0 with x1[p] added at p with p[axis] replaced by indices[p] */
static int scatter_add_forward(nl_func *f) {
    NL_PTR(const float *, x0, nl_in_data(f, 0));
    NL_PTR(const float *, idx, nl_in_data(f, 1));
    NL_PTR(const float *, x1, nl_in_data(f, 2));
    NL_PTR(float *, y, nl_out_data(f, 0));
    memcpy(y, x0, (size_t)nl_out(f, 0)->size * sizeof(float));
    SCATTER_ADD_LOOP(f, idx, y[yo] += x1[x1o]);
    return 0;
}

/* dy: S; dx0 = dy; dx1[p] = dy[q] inside indices' shape, 0 beyond it */
static int scatter_add_backward(nl_func *f, const bool *prop, const bool *accum) {
    nl_no_grad_input(f, 1, prop, accum);   /* the indices */
    if (!prop[0] && !prop[2]) return 0;
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    if (prop[0]) {
        NL_PTR(float *, dx0, nl_in_grad(f, 0, accum[0]));
        const int64_t n = nl_in(f, 0)->size;
        if (accum[0]) for (int64_t j = 0; j < n; j++) dx0[j] += dy[j];
        else memcpy(dx0, dy, (size_t)n * sizeof(float));
    }
    if (prop[2]) {
        NL_PTR(const float *, idx, nl_in_data(f, 1));
        NL_PTR(float *, dx1, nl_in_grad(f, 2, accum[2]));
        nl_grad_clear(dx1, nl_in(f, 2)->size, accum[2]);
        SCATTER_ADD_LOOP(f, idx, dx1[x1o] += dy[yo]);
    }
    return 0;
}

const nl_fdef nl_fdef_scatter_add = {
    .name = "scatter_add",
    .doc = "y = x0 + x1 scattered along axis (1-based, default 1): for each position p of indices, "
           "y[p with p[axis] = indices[p]] += x1[p]; indices hold 1-based positions on x0's axis (negatives from the end)",
    .in_names = "x0,indices,x1", .n_in = 3, .n_out = 1,
    .n_args = 1, .args = scatter_add_args,
    .setup = scatter_add_setup, .forward = scatter_add_forward, .backward = scatter_add_backward, .destroy = free_state,
    .grad_in_data = 2,
};
