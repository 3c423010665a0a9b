/*
 * elementwise.h - generators for element-wise function families on the CPU.
 *
 * NL_UNARY_FUNCTION(op, doc, argdefs, n_args, in_mask, out_mask) defines nl_fdef_<op>:
 *   y = nl_<op>_fwd(x, v), dx (+)= nl_<op>_bwd(x, y, dy, v) with v = args[0] (or 0); the
 *   loops are vector-compiled (NL_SIMD_CLONES) and split across threads when large.
 *   x: any shape; y: the same shape.
 * NL_BINARY_FUNCTION(op, doc) defines nl_fdef_<op> with numpy broadcasting of size-1
 *   dimensions (shapes aligned at the right): a: A, b: B, y: broadcast(A, B); the
 *   gradients are summed over the broadcast dimensions.
 */
#ifndef NNLUA_ELEMENTWISE_H
#define NNLUA_ELEMENTWISE_H
#include "../src/function.h"
#include "elementwise_math.h"
#include <string.h>

int nl_unary_setup(nl_func *f);

/* ---- broadcasting ---- */
typedef struct nl_bcast {
    int ndim;
    int64_t shape[NL_MAX_NDIM];     /* output shape */
    int64_t sa[NL_MAX_NDIM];        /* a's stride in each output dim (0 = broadcast) */
    int64_t sb[NL_MAX_NDIM];
    int64_t size;
    int kind;                       /* 0 generic, 1 same shape, 2 b is one value, 3 a is one value */
} nl_bcast;
int nl_bcast_init(nl_bcast *bc, const nl_var *a, const nl_var *b);
int nl_binary_setup(nl_func *f);
/* Calls body(ia, ib, iy) over every output element: the offsets into a, b and y. */
#define NL_BCAST_LOOP(bc, BODY)                                                         \
    do {                                                                                \
        const nl_bcast *bc_ = (bc);                                                     \
        if (bc_->kind == 1) {                                                           \
            for (int64_t iy = 0; iy < bc_->size; iy++) { int64_t ia = iy, ib = iy; BODY; } \
        } else if (bc_->kind == 2) {                                                    \
            for (int64_t iy = 0; iy < bc_->size; iy++) { int64_t ia = iy, ib = 0; BODY; } \
        } else if (bc_->kind == 3) {                                                    \
            for (int64_t iy = 0; iy < bc_->size; iy++) { int64_t ia = 0, ib = iy; BODY; } \
        } else {                                                                        \
            int64_t idx_[NL_MAX_NDIM] = {0};                                            \
            int64_t ia = 0, ib = 0;                                                     \
            for (int64_t iy = 0; iy < bc_->size; iy++) {                                \
                BODY;                                                                   \
                for (int d_ = bc_->ndim - 1; d_ >= 0; d_--) {                           \
                    ia += bc_->sa[d_]; ib += bc_->sb[d_];                               \
                    if (++idx_[d_] < bc_->shape[d_]) break;                             \
                    ia -= bc_->sa[d_] * bc_->shape[d_]; ib -= bc_->sb[d_] * bc_->shape[d_]; \
                    idx_[d_] = 0;                                                       \
                }                                                                       \
            }                                                                           \
        }                                                                               \
    } while (0)

/* What the unary kernels' range bodies read (nl_parallel_for splits the elements). */
typedef struct nl_unary_ctx {
    const float *x, *y, *dy;
    float *out;
    float v;
    bool accum;
} nl_unary_ctx;
enum { NL_UNARY_COST = 2 };   /* per element: a few flops, memory bound at best */

#define NL_UNARY_FUNCTION(OP, DOC, ARGDEFS, NARGS, IN_MASK, OUT_MASK)                   \
    static NL_SIMD_CLONES void OP##_fwd_range(int64_t i0, int64_t i1, void *vc) {      \
        const nl_unary_ctx *c = vc;                                                     \
        const float *px = c->x;                                                         \
        float *py = c->out;                                                             \
        const float v = c->v;                                                           \
        for (int64_t i = i0; i < i1; i++) py[i] = nl_##OP##_fwd(px[i], v);              \
    }                                                                                   \
    static int OP##_forward(nl_func *f) {                                               \
        NL_PTR(const float *, px, nl_in_data(f, 0));                                    \
        NL_PTR(float *, py, nl_out_data(f, 0));                                         \
        nl_unary_ctx c = {.x = px, .out = py,                                           \
                          .v = (NARGS) ? (float)nl_arg_float(f, 0) : 0.0f};             \
        nl_parallel_for(nl_in(f, 0)->size, NL_UNARY_COST, OP##_fwd_range, &c);          \
        return 0;                                                                       \
    }                                                                                   \
    static NL_SIMD_CLONES void OP##_bwd_range(int64_t i0, int64_t i1, void *vc) {      \
        const nl_unary_ctx *c = vc;                                                     \
        const float *px = c->x, *py = c->y, *dy = c->dy;                                \
        float *dx = c->out;                                                             \
        const float v = c->v;                                                           \
        if (c->accum)                                                                   \
            for (int64_t i = i0; i < i1; i++)                                           \
                dx[i] += nl_##OP##_bwd((IN_MASK) ? px[i] : 0.0f,                        \
                                       (OUT_MASK) ? py[i] : 0.0f, dy[i], v);            \
        else                                                                            \
            for (int64_t i = i0; i < i1; i++)                                           \
                dx[i] = nl_##OP##_bwd((IN_MASK) ? px[i] : 0.0f,                         \
                                      (OUT_MASK) ? py[i] : 0.0f, dy[i], v);             \
    }                                                                                   \
    static int OP##_backward(nl_func *f, const bool *prop, const bool *accum) {         \
        if (!prop[0]) return 0;                                                         \
        const float *px = NULL, *py = NULL;                                             \
        if (IN_MASK) { px = nl_in_data(f, 0); if (!px) return -1; }                     \
        if (OUT_MASK) { py = nl_out_data_r(f, 0); if (!py) return -1; }                 \
        NL_PTR(const float *, dy, nl_out_grad(f, 0));                                   \
        NL_PTR(float *, dx, nl_in_grad(f, 0, accum[0]));                                \
        nl_unary_ctx c = {.x = px, .y = py, .dy = dy, .out = dx, .accum = accum[0],     \
                          .v = (NARGS) ? (float)nl_arg_float(f, 0) : 0.0f};             \
        nl_parallel_for(nl_in(f, 0)->size, NL_UNARY_COST, OP##_bwd_range, &c);          \
        return 0;                                                                       \
    }                                                                                   \
    const nl_fdef nl_fdef_##OP = {                                                      \
        .name = #OP, .doc = DOC, .in_names = "x", .n_in = 1, .n_out = 1,                \
        .n_args = NARGS, .args = ARGDEFS, .setup = nl_unary_setup,                      \
        .forward = OP##_forward, .backward = OP##_backward,                             \
        .grad_in_data = (IN_MASK), .grad_out_data = (OUT_MASK),                         \
    }

#define NL_BINARY_FUNCTION(OP, DOC, IN_MASK, OUT_MASK)                                  \
    static int OP##_forward(nl_func *f) {                                               \
        nl_bcast bc;                                                                    \
        if (nl_bcast_init(&bc, nl_in(f, 0), nl_in(f, 1))) return -1;                    \
        NL_PTR(const float *, pa, nl_in_data(f, 0));                                    \
        NL_PTR(const float *, pb, nl_in_data(f, 1));                                    \
        NL_PTR(float *, py, nl_out_data(f, 0));                                         \
        NL_BCAST_LOOP(&bc, py[iy] = nl_##OP##_fwd(pa[ia], pb[ib]));                     \
        return 0;                                                                       \
    }                                                                                   \
    static int OP##_backward(nl_func *f, const bool *prop, const bool *accum) {         \
        nl_bcast bc;                                                                    \
        if (nl_bcast_init(&bc, nl_in(f, 0), nl_in(f, 1))) return -1;                    \
        NL_PTR(const float *, pa, nl_in_data(f, 0));                                    \
        NL_PTR(const float *, pb, nl_in_data(f, 1));                                    \
        const float *py = NULL;                                                         \
        if (OUT_MASK) { py = nl_out_data_r(f, 0); if (!py) return -1; }                 \
        NL_PTR(const float *, dy, nl_out_grad(f, 0));                                   \
        /* Same variable on both sides (x * x): compute both before writing either. */  \
        bool same = nl_in(f, 0)->grad == nl_in(f, 1)->grad;                             \
        if (prop[0]) {                                                                  \
            NL_PTR(float *, da, nl_in_grad(f, 0, accum[0]));                            \
            if (!accum[0]) memset(da, 0, (size_t)nl_in(f, 0)->size * sizeof(float));    \
            NL_BCAST_LOOP(&bc, da[ia] += nl_##OP##_bwd_a(pa[ia], pb[ib], py ? py[iy] : 0.0f, dy[iy])); \
        }                                                                               \
        if (prop[1]) {                                                                  \
            bool acc = accum[1] || (same && prop[0]);                                   \
            NL_PTR(float *, db, nl_in_grad(f, 1, acc));                                 \
            if (!acc) memset(db, 0, (size_t)nl_in(f, 1)->size * sizeof(float));         \
            NL_BCAST_LOOP(&bc, db[ib] += nl_##OP##_bwd_b(pa[ia], pb[ib], py ? py[iy] : 0.0f, dy[iy])); \
        }                                                                               \
        return 0;                                                                       \
    }                                                                                   \
    const nl_fdef nl_fdef_##OP = {                                                      \
        .name = #OP, .doc = DOC, .in_names = "x0,x1", .n_in = 2, .n_out = 1,            \
        .setup = nl_binary_setup, .forward = OP##_forward, .backward = OP##_backward,   \
        .grad_in_data = (IN_MASK), .grad_out_data = (OUT_MASK),                         \
    }

#endif
