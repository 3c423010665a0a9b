/*
 * cudnn_deconv.cu - the "cudnn" backend of deconvolution and depthwise_convolution
 * (core/functions/deconvolution.c), each as one cuDNN convolution per node built from the
 * plan the CPU setup left in f->state (deconv_plan.h; spatial axes padded in front to 3):
 *   deconvolution          the adjoint of a convolution: conv input = y (outer, OC, O...),
 *                          conv output = x (outer, C, I...), filter = weight (C, OC/group,
 *                          K...) read as cuDNN's KCRS with `group` groups. y = BackwardData
 *                          (w, x); dx = Forward(dy, w); dW = BackwardFilter(dy, x); db =
 *                          BackwardBias(dy). output_padding (< stride) only lengthens y: the
 *                          convolution of y still has x's sizes, which setup checks.
 *   depthwise_convolution  a convolution with C groups: filter = weight (C*M, K...) read
 *                          as (C*M, 1, K...) KCRS, so output channel c*M+m reads channel c.
 * As cudnn.cu's convolution: algorithms chosen per node (here per operation, when first
 * needed) with cudnnGet*Algorithm_v7, the first within NNLUA_CUDNN_WORKSPACE_MB (default
 * 1024) with FP32 math unless NNLUA_ALLOW_TF32=1; workspaces from the caching allocator;
 * accum[i] -> beta = 1. There is no CUDA-kernel version of these functions, so where cuDNN
 * cannot do a case (descriptors refused, other output sizes, no algorithm, or
 * CUDNN_STATUS_NOT_SUPPORTED from a call) the node -- or in backward just that gradient --
 * runs the CPU implementation, its arrays syncing to the host and back lazily.
 */
#include "cudnn_util.cuh"
#include <limits.h>
#include <stdlib.h>
extern "C" {
#include "deconv_plan.h"
}

static const float k_one = 1.0f;

/* A workspace from the caching allocator for the length of one call. */
struct dc_workspace {
    void *p = nullptr;
    size_t bytes = 0;
    int dev = 0;
    bool get(size_t n, int d) {
        if (n == 0) return true;
        p = nlc_alloc(n, d);
        bytes = n;
        dev = d;
        return p != nullptr;
    }
    ~dc_workspace() { if (p) nlc_free(p, bytes, dev); }
};

/* ---- the node's convolution ------------------------------------------------------------ */

/* in (n, in_c, g->img...) conv weight (out_c, in_c/groups, g->k...) -> out (n, out_c, g->pos...);
 * y_is_in: the function's y is the conv input (deconvolution), else its output. */
struct dc_conv {
    int64_t n, in_c, out_c, groups;
    const nl_deconv_geom *g;
    bool y_is_in;
};

static dc_conv deconv_conv(nl_func *f) {
    const nl_deconv_plan *p = (const nl_deconv_plan *)f->state;
    return dc_conv{p->outer, p->oc, p->c, p->group, &p->g, true};
}

static dc_conv dwconv_conv(nl_func *f) {
    const nl_dwconv_plan *p = (const nl_dwconv_plan *)f->state;
    return dc_conv{p->outer, p->c, p->oc, p->c, &p->g, false};
}

enum { OP_FWD, OP_BWD_DATA, OP_BWD_FILTER, OP_N };      /* cuDNN's three convolution calls */

/* Per-node state: descriptors (ind: conv input, outd: conv output, bd: bias (1, y's C, 1...)),
 * and per operation the algorithm: have[op] 0 not chosen yet, 1 chosen, -1 CPU instead. */
struct dc_state {
    bool tried = false, ok = false;
    cudnnTensorDescriptor_t ind = nullptr, outd = nullptr, bd = nullptr;
    cudnnFilterDescriptor_t wd = nullptr;
    cudnnConvolutionDescriptor_t cd = nullptr;
    int have[OP_N] = {0, 0, 0};
    size_t ws[OP_N] = {0, 0, 0};
    cudnnConvolutionFwdAlgo_t fwd_algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
    cudnnConvolutionBwdDataAlgo_t bwd_data_algo = CUDNN_CONVOLUTION_BWD_DATA_ALGO_0;
    cudnnConvolutionBwdFilterAlgo_t bwd_filter_algo = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0;
    ~dc_state() {
        if (ind) cudnnDestroyTensorDescriptor(ind);
        if (outd) cudnnDestroyTensorDescriptor(outd);
        if (bd) cudnnDestroyTensorDescriptor(bd);
        if (wd) cudnnDestroyFilterDescriptor(wd);
        if (cd) cudnnDestroyConvolutionDescriptor(cd);
    }
};

/* Descriptors for c (4-d when the outermost spatial axis is trivial, as for 1-d and 2-d
 * problems, else 5-d); false (st->ok stays false) when cuDNN cannot express it or would
 * give the conv output other sizes than the plan's. */
static bool dc_setup(dc_state *st, const dc_conv &c) {
    st->tried = true;
    const nl_deconv_geom *g = c.g;
    const bool trivial0 = g->img[0] == 1 && g->pos[0] == 1 && g->k[0] == 1 && g->pad[0] == 0;
    const int sp = trivial0 ? 2 : 3, nd = 2 + sp, lead = 3 - sp;
    int64_t id[5], od[5], wd[5], bd[5];
    int pad[3], str[3], dil[3];
    id[0] = od[0] = c.n;
    id[1] = c.in_c; od[1] = c.out_c;
    wd[0] = c.out_c; wd[1] = c.in_c / c.groups;
    bd[0] = 1; bd[1] = c.y_is_in ? c.in_c : c.out_c;
    for (int i = 0; i < sp; i++) {
        const int j = lead + i;
        id[2 + i] = g->img[j]; od[2 + i] = g->pos[j]; wd[2 + i] = g->k[j]; bd[2 + i] = 1;
        if (!nlc_fits_int(g->pad[j]) || !nlc_fits_int(g->stride[j]) || !nlc_fits_int(g->dil[j])) return false;
        pad[i] = (int)g->pad[j]; str[i] = (int)g->stride[j]; dil[i] = (int)g->dil[j];
    }
    int ii[5], oi[5], wi[5], bi[5];
    if (!nlc_dims_fit(nd, id, ii) || !nlc_dims_fit(nd, od, oi) || !nlc_dims_fit(nd, wd, wi) || !nlc_dims_fit(nd, bd, bi) ||
        !nlc_fits_int(c.groups))
        return false;
    if (cudnnCreateTensorDescriptor(&st->ind) || cudnnCreateTensorDescriptor(&st->outd) ||
        cudnnCreateTensorDescriptor(&st->bd) || cudnnCreateFilterDescriptor(&st->wd) ||
        cudnnCreateConvolutionDescriptor(&st->cd))
        return false;
    if (nlc_set_tensor(st->ind, nd, ii) || nlc_set_tensor(st->outd, nd, oi) || nlc_set_tensor(st->bd, nd, bi)) return false;
    if (cudnnSetFilterNdDescriptor(st->wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, nd, wi)) return false;
    if (cudnnSetConvolutionNdDescriptor(st->cd, sp, pad, str, dil, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT))
        return false;
    if (cudnnSetConvolutionGroupCount(st->cd, (int)c.groups)) return false;
    if (cudnnSetConvolutionMathType(st->cd, nlc_allow_tf32() ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH)) return false;
    int o[5];
    if (cudnnGetConvolutionNdForwardOutputDim(st->cd, st->ind, st->wd, nd, o)) return false;
    for (int k = 0; k < nd; k++)
        if (o[k] != oi[k]) return false;
    st->ok = true;
    return true;
}

/* The index of the first of cuDNN's ranked algorithms (perf[0..n)) that succeeded, keeps
 * FP32 math and needs at most limit bytes (ws_of(algo, &bytes) asks cuDNN); -1 if none. */
template <class Perf, class WsOf>
static int pick(const Perf *perf, int n, size_t limit, WsOf ws_of, size_t *ws) {
    for (int i = 0; i < n; i++) {
        size_t b = 0;
        if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > limit || !nlc_math_ok(perf[i].mathType)) continue;
        if (ws_of(perf[i].algo, &b) != CUDNN_STATUS_SUCCESS || b > limit) continue;
        *ws = b;
        return i;
    }
    return -1;
}

/* Whether operation op has an algorithm (chosen on the first call, then remembered). */
static bool have_algo(cudnnHandle_t h, dc_state *st, int op, int dev) {
    if (st->have[op]) return st->have[op] > 0;
    const size_t limit = nlc_workspace_limit(dev);
    int n = 0, i = -1;
    if (op == OP_FWD) {
        cudnnConvolutionFwdAlgoPerf_t p[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
        if (!cudnnGetConvolutionForwardAlgorithm_v7(h, st->ind, st->wd, st->cd, st->outd,
                                                    CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, p))
            i = pick(p, n, limit, [&](cudnnConvolutionFwdAlgo_t a, size_t *b) {
                return cudnnGetConvolutionForwardWorkspaceSize(h, st->ind, st->wd, st->cd, st->outd, a, b);
            }, &st->ws[op]);
        if (i >= 0) st->fwd_algo = p[i].algo;
    } else if (op == OP_BWD_DATA) {
        cudnnConvolutionBwdDataAlgoPerf_t p[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
        if (!cudnnGetConvolutionBackwardDataAlgorithm_v7(h, st->wd, st->outd, st->cd, st->ind,
                                                         CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, p))
            i = pick(p, n, limit, [&](cudnnConvolutionBwdDataAlgo_t a, size_t *b) {
                return cudnnGetConvolutionBackwardDataWorkspaceSize(h, st->wd, st->outd, st->cd, st->ind, a, b);
            }, &st->ws[op]);
        if (i >= 0) st->bwd_data_algo = p[i].algo;
    } else {
        cudnnConvolutionBwdFilterAlgoPerf_t p[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
        if (!cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, st->ind, st->outd, st->cd, st->wd,
                                                           CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &n, p))
            i = pick(p, n, limit, [&](cudnnConvolutionBwdFilterAlgo_t a, size_t *b) {
                return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, st->ind, st->outd, st->cd, st->wd, a, b);
            }, &st->ws[op]);
        if (i >= 0) st->bwd_filter_algo = p[i].algo;
    }
    st->have[op] = i >= 0 ? 1 : -1;
    return i >= 0;
}

/* One convolution call, dst (+)= (accum):
 *   OP_FWD         dst (conv output shape) = conv(in, w)
 *   OP_BWD_DATA    dst (conv input shape)  = conv^T(out, w)
 *   OP_BWD_FILTER  dst (weight shape)      = d conv / d w, from in and out (the gradient side)
 * 0 done; 1 cuDNN refused it (CUDNN_STATUS_NOT_SUPPORTED, checked before any work: dst is
 * untouched) and op is left to the CPU from now on; -1 an error (recorded). */
static int conv_op(cudnnHandle_t h, dc_state *st, int op, int dev, const float *in, const float *w,
                   const float *out, float *dst, bool accum) {
    dc_workspace ws;
    if (!ws.get(st->ws[op], dev)) return -1;
    const float beta = accum ? 1.0f : 0.0f;
    cudnnStatus_t s;
    const char *what;
    if (op == OP_FWD) {
        what = "cudnnConvolutionForward";
        s = cudnnConvolutionForward(h, &k_one, st->ind, in, st->wd, w, st->cd, st->fwd_algo, ws.p, st->ws[op],
                                    &beta, st->outd, dst);
    } else if (op == OP_BWD_DATA) {
        what = "cudnnConvolutionBackwardData";
        s = cudnnConvolutionBackwardData(h, &k_one, st->wd, w, st->outd, out, st->cd, st->bwd_data_algo, ws.p,
                                         st->ws[op], &beta, st->ind, dst);
    } else {
        what = "cudnnConvolutionBackwardFilter";
        s = cudnnConvolutionBackwardFilter(h, &k_one, st->ind, in, st->outd, out, st->cd, st->bwd_filter_algo,
                                           ws.p, st->ws[op], &beta, st->wd, dst);
    }
    const int r = nlc_cudnn_ran(s, what);
    if (r > 0) st->have[op] = -1;
    return r;
}

/* The node's state, its descriptors set up on the first call; NULL with an error. */
static dc_state *dc_prepare(nl_func *f, const dc_conv &c) {
    dc_state *st = nlc_state<dc_state>(f);
    if (st && !st->tried) dc_setup(st, c);
    return st;
}

/* x, weight, [bias] -> y (+ bias per channel): BackwardData for a deconvolution (y is the
 * conv input), Forward for a depthwise convolution; the CPU forward where cuDNN cannot. */
static int dc_forward(nl_func *f, const dc_conv &c) {
    dc_state *st = dc_prepare(f, c);
    if (!st) return -1;
    const int dev = f->device_id;
    cudnnHandle_t h = nlc_cudnn(dev);
    if (!h) return -1;
    const int op = c.y_is_in ? OP_BWD_DATA : OP_FWD;
    if (!st->ok || !have_algo(h, st, op, dev)) return f->def->forward(f);
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(const float *, w, nlc_in(f, 1));
    NLC_PTR(float *, y, nlc_out(f, 0));
    const int r = c.y_is_in ? conv_op(h, st, op, dev, nullptr, w, x, y, false)
                            : conv_op(h, st, op, dev, x, w, nullptr, y, false);
    if (r) return r < 0 ? -1 : f->def->forward(f);
    if (f->in[2]) {
        NLC_PTR(const float *, b, nlc_in(f, 2));
        const cudnnStatus_t s = cudnnAddTensor(h, &k_one, st->bd, b, &k_one, c.y_is_in ? st->ind : st->outd, y);
        if (s == CUDNN_STATUS_NOT_SUPPORTED) { st->ok = false; return f->def->forward(f); }
        if (s != CUDNN_STATUS_SUCCESS) return nlc_cudnn_err(s, "cudnnAddTensor (bias)");
    }
    return 0;
}

/* dy -> db = sum of dy per channel (BackwardBias), dx (deconvolution: Forward(dy, w);
 * depthwise: BackwardData(w, dy)), dW (BackwardFilter; the conv input is dy for a
 * deconvolution, x for a depthwise convolution), each added when accum[i]; the gradients
 * cuDNN cannot do are left to the CPU backward, called once with just those. */
static int dc_backward(nl_func *f, const dc_conv &c, const bool *prop, const bool *accum) {
    const bool pb = f->in[2] && prop[2];
    if (!prop[0] && !prop[1] && !pb) return 0;
    dc_state *st = dc_prepare(f, c);
    if (!st) return -1;
    const int dev = f->device_id;
    cudnnHandle_t h = nlc_cudnn(dev);
    if (!h) return -1;
    if (!st->ok) return f->def->backward(f, prop, accum);
    bool cpu[3] = {false, false, false};
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    if (pb) {
        NLC_PTR(float *, db, nlc_in_grad(f, 2, accum[2]));
        const float beta = accum[2] ? 1.0f : 0.0f;
        const cudnnStatus_t s =
            cudnnConvolutionBackwardBias(h, &k_one, c.y_is_in ? st->ind : st->outd, dy, &beta, st->bd, db);
        if (s == CUDNN_STATUS_NOT_SUPPORTED) cpu[2] = true;
        else if (s != CUDNN_STATUS_SUCCESS) return nlc_cudnn_err(s, "cudnnConvolutionBackwardBias");
    }
    for (int i = 0; i < 2; i++) {                       /* 0: dx (needs w), 1: dW (needs x) */
        if (!prop[i]) continue;
        const int op = i == 1 ? OP_BWD_FILTER : (c.y_is_in ? OP_FWD : OP_BWD_DATA);
        if (!have_algo(h, st, op, dev)) { cpu[i] = true; continue; }
        NLC_PTR(const float *, other, nlc_in(f, 1 - i));
        NLC_PTR(float *, d, nlc_in_grad(f, i, accum[i]));
        const float *x = i == 1 ? other : nullptr, *w = i == 0 ? other : nullptr;
        const int r = conv_op(h, st, op, dev, c.y_is_in ? dy : x, w, c.y_is_in ? x : dy, d, accum[i]);
        if (r < 0) return -1;
        cpu[i] = r > 0;
    }
    if (cpu[0] || cpu[1] || cpu[2]) return f->def->backward(f, cpu, accum);
    return 0;
}

/* deconvolution: x (B..., C, I...), weight (C, OC/group, K...), bias (OC) -> y (B..., OC, O...) */
static int deconv_forward(nl_func *f) { return dc_forward(f, deconv_conv(f)); }
/* dy (B..., OC, O...) -> dx (B..., C, I...), dW (C, OC/group, K...), db (OC) */
static int deconv_backward(nl_func *f, const bool *prop, const bool *accum) {
    return dc_backward(f, deconv_conv(f), prop, accum);
}

/* depthwise_convolution: x (B..., C, I...), weight (C*M, K...), bias (C*M) -> y (B..., C*M, O...) */
static int dwconv_forward(nl_func *f) { return dc_forward(f, dwconv_conv(f)); }
/* dy (B..., C*M, O...) -> dx (B..., C, I...), dW (C*M, K...), db (C*M) */
static int dwconv_backward(nl_func *f, const bool *prop, const bool *accum) {
    return dc_backward(f, dwconv_conv(f), prop, accum);
}

int nlc_register_deconv(void) {
    if (nlc_register("deconvolution", "cudnn", deconv_forward, deconv_backward)) return -1;
    if (nlc_register("depthwise_convolution", "cudnn", dwconv_forward, dwconv_backward)) return -1;
    return 0;
}
