/*
 * affine.c - the fully connected layer, NNabla's Affine:
 *   affine(x, weight, [bias], base_axis=2)
 * x is flattened at base_axis (Lua-style, 1-based: 2 keeps the first axis as rows) to
 * (M, K) = (prod(x.shape[1..base_axis-1]), prod(x.shape[base_axis..])); weight is
 * (K, out...) and is right-multiplied: y = x W + b, y has shape
 * x.shape[1..base_axis-1] .. weight.shape[2..]; bias has shape weight.shape[2..].
 * All products go to OpenBLAS sgemm (nl_sgemm).
 */
#include "../src/function.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>

enum { A_BASE_AXIS };

typedef struct affine_state {
    int m, k, n;   /* x: (m, k), weight: (k, n), y: (m, n) */
} affine_state;

static const nl_argdef affine_args[] = {
    {"base_axis", NL_ARG_INT, "2", NULL},
};

static int affine_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0), *w = nl_in(f, 1), *b = f->in[2];
    char sx[160], sw[160], sb[160], s2[160];
    int ba;
    if (nl_norm_axis("base_axis", nl_arg_int(f, A_BASE_AXIS), x->ndim, &ba)) return -1;
    if (w->ndim < 2)
        return nl_error("weight must have at least 2 dimensions (in, out...), got %s",
                        nl_shape_str(sw, w->ndim, w->shape));
    int64_t m = 1, k = 1, n = 1;
    for (int d = 0; d < ba; d++) m *= x->shape[d];
    for (int d = ba; d < x->ndim; d++) k *= x->shape[d];
    for (int d = 1; d < w->ndim; d++) n *= w->shape[d];
    if (w->shape[0] != k) {
        int64_t flat[2] = {m, k};
        return nl_error("weight has %lld rows but x has %lld features at base_axis %lld "
                        "(x %s flattens to %s)",
                        (long long)w->shape[0], (long long)k, (long long)nl_arg_int(f, A_BASE_AXIS),
                        nl_shape_str(sx, x->ndim, x->shape), nl_shape_str(s2, 2, flat));
    }
    if (b) {
        bool ok = b->ndim == w->ndim - 1;
        for (int d = 0; ok && d < b->ndim; d++) ok = b->shape[d] == w->shape[d + 1];
        if (!ok)
            return nl_error("bias has shape %s but weight %s gives outputs of shape %s",
                            nl_shape_str(sb, b->ndim, b->shape), nl_shape_str(sw, w->ndim, w->shape),
                            nl_shape_str(s2, w->ndim - 1, w->shape + 1));
    }
    int ondim = ba + w->ndim - 1;
    if (ondim > NL_MAX_NDIM)
        return nl_error("the output would have %d dimensions (at most %d)", ondim, NL_MAX_NDIM);
    if (m > INT_MAX || k > INT_MAX || n > INT_MAX)
        return nl_error("matrix sizes %lld x %lld x %lld are too large for BLAS",
                        (long long)m, (long long)k, (long long)n);
    int64_t oshape[NL_MAX_NDIM];
    for (int d = 0; d < ba; d++) oshape[d] = x->shape[d];
    for (int d = 1; d < w->ndim; d++) oshape[ba + d - 1] = w->shape[d];
    nl_set_out_shape(f, 0, ondim, oshape);

    affine_state *st = malloc(sizeof *st);
    if (!st) return nl_error("out of memory");
    st->m = (int)m; st->k = (int)k; st->n = (int)n;
    f->state = st;
    return 0;
}

static void affine_destroy(nl_func *f) { free(f->state); }

/* y (m, n): every row = b (short rows: a loop, not a memcpy call per row) */
static NL_NO_MEMCALLS void fill_rows(float *restrict y, const float *restrict b, int m, int n) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) y[(int64_t)i * n + j] = b[j];
}

/* x: (m, k), w: (k, n), b: (n), y: (m, n) = x w + b */
static int affine_forward(nl_func *f) {
    const affine_state *st = f->state;
    const int m = st->m, k = st->k, n = st->n;
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(const float *, w, nl_in_data(f, 1));
    NL_PTR(float *, y, nl_out_data(f, 0));
    float beta = 0.0f;
    if (f->in[2]) {
        NL_PTR(const float *, b, nl_in_data(f, 2));
        fill_rows(y, b, m, n);
        beta = 1.0f;
    }
    if (m == 0 || n == 0) return 0;
    if (k == 0) {
        if (beta == 0.0f) memset(y, 0, (size_t)m * (size_t)n * sizeof(float));
        return 0;
    }
    nl_sgemm(false, false, m, n, k,
                1.0f, x, k, w, n, beta, y, n);
    return 0;
}

/* dy: (m, n); dx (m, k) = dy w^T; dw (k, n) = x^T dy; db (n) = column sums of dy */
static int affine_backward(nl_func *f, const bool *prop, const bool *accum) {
    const affine_state *st = f->state;
    const int m = st->m, k = st->k, n = st->n;
    bool pb = f->in[2] && prop[2];
    if (!prop[0] && !prop[1] && !pb) return 0;
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    if (prop[0]) {
        NL_PTR(const float *, w, nl_in_data(f, 1));
        NL_PTR(float *, dx, nl_in_grad(f, 0, accum[0]));
        if (n == 0) {
            if (!accum[0]) memset(dx, 0, (size_t)m * (size_t)k * sizeof(float));
        } else if (m > 0 && k > 0) {
            nl_sgemm(false, true, m, k, n,
                        1.0f, dy, n, w, n, accum[0] ? 1.0f : 0.0f, dx, k);
        }
    }
    if (prop[1]) {
        NL_PTR(const float *, x, nl_in_data(f, 0));
        NL_PTR(float *, dw, nl_in_grad(f, 1, accum[1]));
        if (m == 0) {
            if (!accum[1]) memset(dw, 0, (size_t)k * (size_t)n * sizeof(float));
        } else if (k > 0 && n > 0) {
            nl_sgemm(true, false, k, n, m,
                        1.0f, x, k, dy, n, accum[1] ? 1.0f : 0.0f, dw, n);
        }
    }
    if (pb) {
        NL_PTR(float *, db, nl_in_grad(f, 2, accum[2]));
        if (!accum[2]) memset(db, 0, (size_t)n * sizeof(float));
        for (int i = 0; i < m; i++) {
            const float *row = dy + (int64_t)i * n;
            for (int j = 0; j < n; j++) db[j] += row[j];
        }
    }
    return 0;
}

const nl_fdef nl_fdef_affine = {
    .name = "affine",
    .doc = "y = x W + b with x flattened at base_axis to (M, K), W (K, out...), b (out...)",
    .in_names = "x,weight,bias",
    .n_in = 2,
    .n_opt_in = 1,
    .n_out = 1,
    .n_args = 1,
    .args = affine_args,
    .setup = affine_setup,
    .forward = affine_forward,
    .backward = affine_backward,
    .destroy = affine_destroy,
    .grad_in_data = (1u << 0) | (1u << 1),   /* dW reads x, dx reads W */
    .grad_out_data = 0,
};
