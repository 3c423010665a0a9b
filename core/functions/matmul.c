/*
 * matmul.c - batch_matmul(a, b, transpose_a=false, transpose_b=false), NNabla's
 * BatchMatmul: the last two axes of a and b are matrices, everything before them batch
 * axes, which broadcast numpy-style (aligned at the right; size-1 axes repeat). With
 * op(a) (P, Q) and op(b) (Q, R), y has shape batch .. (P, R). One sgemm per
 * batch; the gradients of a broadcast input are summed over its repeats.
 */
#include "nd_view.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>

enum { BM_TA, BM_TB };
static const nl_argdef batch_matmul_args[] = {
    {"transpose_a", NL_ARG_BOOL, "false", NULL},
    {"transpose_b", NL_ARG_BOOL, "false", NULL},
};

typedef struct bmm_plan {
    int P, Q, R;                      /* op(a): (P, Q), op(b): (Q, R), y: (P, R) */
    int lda, ldb;                     /* row lengths of a and b as stored */
    bool ta, tb;
    int nb;                           /* batch axes of y */
    int64_t bshape[NL_MAX_NDIM];      /* y's batch shape */
    int64_t sa[NL_MAX_NDIM], sb[NL_MAX_NDIM];   /* a's and b's matrix strides per batch axis (0 = repeat) */
    int64_t batches;
} bmm_plan;

static int batch_matmul_setup(nl_func *f) {
    const nl_var *a = nl_in(f, 0), *b = nl_in(f, 1);
    char s1[160], s2[160];
    if (a->ndim < 2 || b->ndim < 2)
        return nl_error("a %s and b %s must both have at least 2 axes (the last two are matrices)",
                        nl_shape_str(s1, a->ndim, a->shape), nl_shape_str(s2, b->ndim, b->shape));
    const bool ta = nl_arg_bool(f, BM_TA), tb = nl_arg_bool(f, BM_TB);
    const int64_t ar = a->shape[a->ndim - 2], ac = a->shape[a->ndim - 1];
    const int64_t br = b->shape[b->ndim - 2], bc = b->shape[b->ndim - 1];
    const int64_t P = ta ? ac : ar, Qa = ta ? ar : ac, Qb = tb ? bc : br, R = tb ? br : bc;
    if (Qa != Qb)
        return nl_error("inner sizes differ: op(a) is %lld x %lld and op(b) is %lld x %lld (a %s, b %s, transpose_a=%s, "
                        "transpose_b=%s)", (long long)P, (long long)Qa, (long long)Qb, (long long)R,
                        nl_shape_str(s1, a->ndim, a->shape), nl_shape_str(s2, b->ndim, b->shape),
                        ta ? "true" : "false", tb ? "true" : "false");
    if (P > INT_MAX || Qa > INT_MAX || R > INT_MAX)
        return nl_error("matrix sizes %lld x %lld x %lld are too large for BLAS", (long long)P, (long long)Qa, (long long)R);
    bmm_plan *p = calloc(1, sizeof *p);
    if (!p) return nl_error("out of memory");
    f->state = p;
    p->P = (int)P; p->Q = (int)Qa; p->R = (int)R;
    p->lda = (int)ac; p->ldb = (int)bc;
    p->ta = ta; p->tb = tb;
    const int na = a->ndim - 2, nbb = b->ndim - 2;
    const int nb = na > nbb ? na : nbb;
    p->nb = nb;
    int64_t sa = ar * ac, sb = br * bc;       /* strides walk from the innermost batch axis */
    p->batches = 1;
    for (int k = nb - 1; k >= 0; k--) {
        const int ka = k - (nb - na), kb = k - (nb - nbb);
        const int64_t la = ka >= 0 ? a->shape[ka] : 1, lb = kb >= 0 ? b->shape[kb] : 1;
        if (la != lb && la != 1 && lb != 1)
            return nl_error("batch axes of a %s and b %s cannot be broadcast (%lld vs %lld)",
                            nl_shape_str(s1, a->ndim, a->shape), nl_shape_str(s2, b->ndim, b->shape),
                            (long long)la, (long long)lb);
        p->bshape[k] = la == 1 ? lb : la;
        p->sa[k] = la == 1 ? 0 : sa;
        p->sb[k] = lb == 1 ? 0 : sb;
        sa *= la;
        sb *= lb;
        p->batches *= p->bshape[k];
    }
    int64_t oshape[NL_MAX_NDIM];
    memcpy(oshape, p->bshape, (size_t)nb * sizeof(int64_t));
    oshape[nb] = P;
    oshape[nb + 1] = R;
    nl_set_out_shape(f, 0, nb + 2, oshape);
    return 0;
}

static void bmm_destroy(nl_func *f) { free(f->state); }

/* Calls body with the matrix offsets into a and b of each output batch in order. */
#define BMM_LOOP(p, BODY)                                                   \
    do {                                                                    \
        int64_t bi_[NL_MAX_NDIM] = {0}, oa = 0, ob = 0;                     \
        for (int64_t n = 0; n < (p)->batches; n++) {                        \
            BODY;                                                           \
            for (int k_ = (p)->nb - 1; k_ >= 0; k_--) {                     \
                oa += (p)->sa[k_]; ob += (p)->sb[k_];                       \
                if (++bi_[k_] < (p)->bshape[k_]) break;                     \
                oa -= (p)->sa[k_] * (p)->bshape[k_];                        \
                ob -= (p)->sb[k_] * (p)->bshape[k_];                        \
                bi_[k_] = 0;                                                \
            }                                                               \
        }                                                                   \
    } while (0)

static inline int ld(int n) { return n > 0 ? n : 1; }

/* a: batch_a .. (P, Q) or (Q, P); b: batch_b .. (Q, R) or (R, Q); y: batch .. (P, R) = op(a) op(b) */
static int batch_matmul_forward(nl_func *f) {
    const bmm_plan *p = f->state;
    NL_PTR(const float *, a, nl_in_data(f, 0));
    NL_PTR(const float *, b, nl_in_data(f, 1));
    NL_PTR(float *, y, nl_out_data(f, 0));
    const int P = p->P, Q = p->Q, R = p->R;
    const int64_t ystep = (int64_t)P * R;
    if (ystep == 0) return 0;
    if (Q == 0) { memset(y, 0, (size_t)(ystep * p->batches) * sizeof(float)); return 0; }
    BMM_LOOP(p, nl_sgemm(p->ta, p->tb,
                            P, R, Q, 1.0f, a + oa, ld(p->lda), b + ob, ld(p->ldb), 0.0f, y + n * ystep, ld(R)));
    return 0;
}

/* dy: batch .. (P, R); dop(a) = dy op(b)^T, dop(b) = op(a)^T dy, each summed over the
 * batches that reuse the matrix */
static int batch_matmul_backward(nl_func *f, const bool *prop, const bool *accum) {
    const bmm_plan *p = f->state;
    const int P = p->P, Q = p->Q, R = p->R;
    const int64_t ystep = (int64_t)P * R;
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    if (prop[0]) {
        NL_PTR(const float *, b, nl_in_data(f, 1));
        NL_PTR(float *, da, nl_in_grad(f, 0, accum[0]));
        nl_grad_clear(da, nl_in(f, 0)->size, accum[0]);
        if (ystep > 0 && Q > 0) {
            if (!p->ta)   /* da (P, Q) += dy (P, R) op(b)^T (R, Q) */
                BMM_LOOP(p, nl_sgemm(false, !p->tb, P, Q, R, 1.0f,
                                        dy + n * ystep, ld(R), b + ob, ld(p->ldb), 1.0f, da + oa, ld(p->lda)));
            else          /* da (Q, P) += op(b) (Q, R) dy^T (R, P) */
                BMM_LOOP(p, nl_sgemm(p->tb, true, Q, P, R, 1.0f,
                                        b + ob, ld(p->ldb), dy + n * ystep, ld(R), 1.0f, da + oa, ld(p->lda)));
        }
    }
    if (prop[1]) {
        NL_PTR(const float *, a, nl_in_data(f, 0));
        NL_PTR(float *, db, nl_in_grad(f, 1, accum[1]));
        nl_grad_clear(db, nl_in(f, 1)->size, accum[1]);
        if (ystep > 0 && Q > 0) {
            if (!p->tb)   /* db (Q, R) += op(a)^T (Q, P) dy (P, R) */
                BMM_LOOP(p, nl_sgemm(!p->ta, false, Q, R, P, 1.0f,
                                        a + oa, ld(p->lda), dy + n * ystep, ld(R), 1.0f, db + ob, ld(p->ldb)));
            else          /* db (R, Q) += dy^T (R, P) op(a) (P, Q) */
                BMM_LOOP(p, nl_sgemm(true, p->ta, R, Q, P, 1.0f,
                                        dy + n * ystep, ld(R), a + oa, ld(p->lda), 1.0f, db + ob, ld(p->ldb)));
        }
    }
    return 0;
}

const nl_fdef nl_fdef_batch_matmul = {
    .name = "batch_matmul",
    .doc = "y = op(a) op(b) over the last two axes (op transposes with transpose_a / transpose_b); the axes before "
           "them are batch axes and broadcast (size-1 axes repeat, shorter lists align at the right)",
    .in_names = "a,b", .n_in = 2, .n_out = 1,
    .n_args = 2, .args = batch_matmul_args,
    .setup = batch_matmul_setup, .forward = batch_matmul_forward, .backward = batch_matmul_backward,
    .destroy = bmm_destroy,
    .grad_in_data = 3,
};
