/*
 * cudnn.cu - the "cudnn" backend: convolution, max/average pooling,
 * batch_normalization, softmax/log_softmax and the tanh/sigmoid/relu activations through
 * cuDNN, each falling back to the CUDA kernels (layers.cu, reduce.cu, elementwise.cu)
 * where cuDNN cannot express a case with NNabla's semantics or reports
 * CUDNN_STATUS_NOT_SUPPORTED, while a node is set up (descriptors, algorithm and workspace
 * queries) or from a compute call. A refused compute call has done nothing (nlc_cudnn_ran):
 * its work, and in a backward the gradients not yet computed, run the CUDA kernels, and so
 * does the node from then on; the gradients cuDNN already wrote are kept, so none is added
 * twice into an accumulating one:
 *   convolution      descriptors per node; algorithms chosen once per node with
 *                    cudnnGet*Algorithm_v7 (the first that runs within the workspace limit,
 *                    NNLUA_CUDNN_WORKSPACE_MB, default 1024); workspace from the caching
 *                    allocator. FP32 math (no TF32) unless NNLUA_ALLOW_TF32=1.
 *   pooling          ignore_border = true and pad < kernel (cuDNN's output size and
 *                    window rule); max pooling uses cuDNN when no backward can follow (the
 *                    node was made without grad or its input needs none): training needs
 *                    the argmax the CUDA kernel keeps, because the graph may clear the
 *                    input and output buffers that cuDNN's backward would read.
 *   batch_norm       cudnnBatchNormalizationForwardTraining / ForwardInference / Backward,
 *                    spatial mode over (outer, C, inner); exponentialAverageFactor =
 *                    1 - decay_rate; cuDNN's running variance is the unbiased one, as
 *                    normalization.c's. Batches of one value per channel, and a node with
 *                    only one of mean/variance, use the CUDA kernels.
 *   softmax          CUDNN_SOFTMAX_MODE_CHANNEL over (outer, C, inner, 1), ACCURATE / LOG.
 *   activations      cudnnActivationForward/Backward; backward needs both x and y, so it
 *                    uses the CUDA kernel when the graph has cleared one of them.
 */
#include "layers.cuh"
#include "cudnn_util.cuh"
#include <limits.h>
#include <stdlib.h>

static const float k_one = 1.0f, k_zero = 0.0f;

/* A cuDNN compute call whose refusal sends the node to the CUDA kernels: evaluates call;
 * on CUDNN_STATUS_NOT_SUPPORTED clears ok and runs fallback (returning its status); on any
 * other failure returns -1 with the error recorded. */
#define NLC_CUDNN_OR(ok, call, fallback)                               \
    do {                                                               \
        const int r_ = nlc_cudnn_ran((call), #call);                   \
        if (r_ < 0) return -1;                                         \
        if (r_ > 0) { (ok) = false; return (fallback); }               \
    } while (0)

/* ---- convolution ------------------------------------------------------------------------ */

static bool conv_setup(conv_state *st, const conv_geom &g) {
    st->tried = true;
    const int sp = g.sd < 2 ? 2 : g.sd, nd = 2 + sp;
    int64_t xd[5], yd[5], wd[5], bd[5];
    int pad[3], str[3], dil[3];
    xd[0] = g.outer; xd[1] = g.c;
    yd[0] = g.outer; yd[1] = g.oc;
    wd[0] = g.oc; wd[1] = g.cg;
    bd[0] = 1; bd[1] = g.oc;
    for (int i = 0; i < sp; i++) {
        const int j = 3 - sp + i;                    /* geometry index (leading 1s) */
        xd[2 + i] = g.in[j]; yd[2 + i] = g.out[j]; wd[2 + i] = g.k[j]; bd[2 + i] = 1;
        if (!nlc_fits_int(g.pad[j]) || !nlc_fits_int(g.stride[j]) || !nlc_fits_int(g.dil[j])) return false;
        pad[i] = (int)g.pad[j]; str[i] = (int)g.stride[j]; dil[i] = (int)g.dil[j];
    }
    int xi[5], yi[5], wi[5], bi[5];
    if (!nlc_dims_fit(nd, xd, xi) || !nlc_dims_fit(nd, yd, yi) || !nlc_dims_fit(nd, wd, wi) || !nlc_dims_fit(nd, bd, bi) ||
        !nlc_fits_int(g.group))
        return false;
    if (cudnnCreateTensorDescriptor(&st->xd) || cudnnCreateTensorDescriptor(&st->yd) ||
        cudnnCreateTensorDescriptor(&st->bd) || cudnnCreateFilterDescriptor(&st->wd) ||
        cudnnCreateConvolutionDescriptor(&st->cd))
        return false;
    if (nlc_set_tensor(st->xd, nd, xi) || nlc_set_tensor(st->yd, nd, yi) || nlc_set_tensor(st->bd, nd, bi)) return false;
    if (cudnnSetFilterNdDescriptor(st->wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, nd, wi)) return false;
    if (cudnnSetConvolutionNdDescriptor(st->cd, sp, pad, str, dil, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT))
        return false;
    if (cudnnSetConvolutionGroupCount(st->cd, (int)g.group)) return false;
    if (cudnnSetConvolutionMathType(st->cd, nlc_allow_tf32() ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH)) return false;
    int od[5];
    if (cudnnGetConvolutionNdForwardOutputDim(st->cd, st->xd, st->wd, nd, od)) return false;
    for (int k = 0; k < nd; k++)
        if (od[k] != yi[k]) return false;             /* cuDNN would compute another shape */
    st->ok = true;
    return true;
}

static bool select_fwd(cudnnHandle_t h, conv_state *st, size_t limit) {
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int n = 0;
    if (cudnnGetConvolutionForwardAlgorithm_v7(h, st->xd, st->wd, st->cd, st->yd, CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
                                               &n, perf))
        return false;
    for (int i = 0; i < n; i++) {
        size_t ws = 0;
        if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > limit || !nlc_math_ok(perf[i].mathType)) continue;
        if (cudnnGetConvolutionForwardWorkspaceSize(h, st->xd, st->wd, st->cd, st->yd, perf[i].algo, &ws)) continue;
        if (ws > limit) continue;
        st->fwd_algo = perf[i].algo;
        st->fwd_ws = ws;
        st->have_fwd = true;
        return true;
    }
    return false;
}

static bool select_bwd(cudnnHandle_t h, conv_state *st, size_t limit) {
    cudnnConvolutionBwdDataAlgoPerf_t pd[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    cudnnConvolutionBwdFilterAlgoPerf_t pf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    int n = 0;
    if (!st->have_bwd_data) {
        if (cudnnGetConvolutionBackwardDataAlgorithm_v7(h, st->wd, st->yd, st->cd, st->xd,
                                                        CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, pd))
            return false;
        for (int i = 0; i < n && !st->have_bwd_data; i++) {
            size_t ws = 0;
            if (pd[i].status != CUDNN_STATUS_SUCCESS || pd[i].memory > limit || !nlc_math_ok(pd[i].mathType)) continue;
            if (cudnnGetConvolutionBackwardDataWorkspaceSize(h, st->wd, st->yd, st->cd, st->xd, pd[i].algo, &ws)) continue;
            if (ws > limit) continue;
            st->bwd_data_algo = pd[i].algo;
            st->bwd_data_ws = ws;
            st->have_bwd_data = true;
        }
        if (!st->have_bwd_data) return false;
    }
    if (!st->have_bwd_filter) {
        if (cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, st->xd, st->yd, st->cd, st->wd,
                                                          CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &n, pf))
            return false;
        for (int i = 0; i < n && !st->have_bwd_filter; i++) {
            size_t ws = 0;
            if (pf[i].status != CUDNN_STATUS_SUCCESS || pf[i].memory > limit || !nlc_math_ok(pf[i].mathType)) continue;
            if (cudnnGetConvolutionBackwardFilterWorkspaceSize(h, st->xd, st->yd, st->cd, st->wd, pf[i].algo, &ws))
                continue;
            if (ws > limit) continue;
            st->bwd_filter_algo = pf[i].algo;
            st->bwd_filter_ws = ws;
            st->have_bwd_filter = true;
        }
        if (!st->have_bwd_filter) return false;
    }
    return true;
}

/* A workspace from the caching allocator for the length of one call. */
struct workspace {
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
    ~workspace() { if (p) nlc_free(p, bytes, dev); }
};

static int conv_forward(nl_func *f) {
    conv_geom g;
    if (nlc_conv_geometry(f, &g)) return -1;
    conv_state *st = nlc_state<conv_state>(f);
    if (!st) return -1;
    const int dev = f->device_id;
    cudnnHandle_t h = nlc_cudnn(dev);
    if (!h) return -1;
    if (!st->tried) conv_setup(st, g);
    if (st->ok && !st->have_fwd && !select_fwd(h, st, nlc_workspace_limit(dev))) st->ok = false;
    if (!st->ok) return nlc_conv_cuda_forward(f);
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(const float *, w, nlc_in(f, 1));
    NLC_PTR(float *, y, nlc_out(f, 0));
    workspace ws;
    if (!ws.get(st->fwd_ws, dev)) return -1;
    /* a refused AddTensor after the product: the CUDA forward writes all of y again */
    NLC_CUDNN_OR(st->ok, cudnnConvolutionForward(h, &k_one, st->xd, x, st->wd, w, st->cd, st->fwd_algo, ws.p,
                                                 st->fwd_ws, &k_zero, st->yd, y),
                 nlc_conv_cuda_forward(f));
    if (f->in[2]) {
        NLC_PTR(const float *, b, nlc_in(f, 2));
        NLC_CUDNN_OR(st->ok, cudnnAddTensor(h, &k_one, st->bd, b, &k_one, st->yd, y), nlc_conv_cuda_forward(f));
    }
    return 0;
}

static int conv_backward(nl_func *f, const bool *prop, const bool *accum) {
    const bool pb = f->in[2] && prop[2];
    if (!prop[0] && !prop[1] && !pb) return 0;
    conv_geom g;
    if (nlc_conv_geometry(f, &g)) return -1;
    conv_state *st = nlc_state<conv_state>(f);
    if (!st) return -1;
    const int dev = f->device_id;
    cudnnHandle_t h = nlc_cudnn(dev);
    if (!h) return -1;
    if (!st->tried) conv_setup(st, g);
    if (st->ok && (prop[0] || prop[1]) && !select_bwd(h, st, nlc_workspace_limit(dev))) st->ok = false;
    if (!st->ok) return nlc_conv_cuda_backward(f, prop, accum);
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    bool left[3] = {prop[0], prop[1], pb};     /* the gradients not written yet */
    int r = 0;                                 /* 1 once cuDNN refuses a call */
    if (pb) {
        NLC_PTR(float *, db, nlc_in_grad(f, 2, accum[2]));
        const float beta = accum[2] ? 1.0f : 0.0f;
        r = nlc_cudnn_ran(cudnnConvolutionBackwardBias(h, &k_one, st->yd, dy, &beta, st->bd, db),
                          "cudnnConvolutionBackwardBias");
        if (r < 0) return -1;
        if (r == 0) left[2] = false;
    }
    if (r == 0 && prop[1]) {
        NLC_PTR(const float *, x, nlc_in(f, 0));
        NLC_PTR(float *, dw, nlc_in_grad(f, 1, accum[1]));
        workspace ws;
        if (!ws.get(st->bwd_filter_ws, dev)) return -1;
        const float beta = accum[1] ? 1.0f : 0.0f;
        r = nlc_cudnn_ran(cudnnConvolutionBackwardFilter(h, &k_one, st->xd, x, st->yd, dy, st->cd,
                                                         st->bwd_filter_algo, ws.p, st->bwd_filter_ws, &beta,
                                                         st->wd, dw),
                          "cudnnConvolutionBackwardFilter");
        if (r < 0) return -1;
        if (r == 0) left[1] = false;
    }
    if (r == 0 && prop[0]) {
        NLC_PTR(const float *, w, nlc_in(f, 1));
        NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
        workspace ws;
        if (!ws.get(st->bwd_data_ws, dev)) return -1;
        const float beta = accum[0] ? 1.0f : 0.0f;
        r = nlc_cudnn_ran(cudnnConvolutionBackwardData(h, &k_one, st->wd, w, st->yd, dy, st->cd, st->bwd_data_algo,
                                                       ws.p, st->bwd_data_ws, &beta, st->xd, dx),
                          "cudnnConvolutionBackwardData");
        if (r < 0) return -1;
        if (r == 0) left[0] = false;
    }
    if (r == 0) return 0;
    st->ok = false;                            /* refused: the rest, and the node from now on */
    return nlc_conv_cuda_backward(f, left, accum);
}

/* ---- pooling ------------------------------------------------------------------------------ */

static bool pool_setup(pool_state *st, const pool_geom &g, bool max) {
    st->tried = true;
    if (!g.ignore_border) return false;               /* NNabla's other output size */
    const int sp = g.sd < 2 ? 2 : g.sd, nd = 2 + sp;
    int64_t xd[5], yd[5];
    int win[3], pad[3], str[3];
    xd[0] = yd[0] = g.maps;
    xd[1] = yd[1] = 1;
    for (int i = 0; i < sp; i++) {
        const int j = 3 - sp + i;
        xd[2 + i] = g.in[j]; yd[2 + i] = g.out[j];
        if (g.pad[j] >= g.k[j] || !nlc_fits_int(g.k[j]) || !nlc_fits_int(g.stride[j])) return false;
        win[i] = (int)g.k[j]; pad[i] = (int)g.pad[j]; str[i] = (int)g.stride[j];
    }
    int xi[5], yi[5];
    if (!nlc_dims_fit(nd, xd, xi) || !nlc_dims_fit(nd, yd, yi)) return false;
    if (cudnnCreatePoolingDescriptor(&st->pd) || cudnnCreateTensorDescriptor(&st->xd) ||
        cudnnCreateTensorDescriptor(&st->yd))
        return false;
    const cudnnPoolingMode_t mode = max ? CUDNN_POOLING_MAX
                                        : (g.including_pad ? CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING
                                                           : CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING);
    if (cudnnSetPoolingNdDescriptor(st->pd, mode, CUDNN_NOT_PROPAGATE_NAN, sp, win, pad, str)) return false;
    if (nlc_set_tensor(st->xd, nd, xi) || nlc_set_tensor(st->yd, nd, yi)) return false;
    int od[5];
    if (cudnnGetPoolingNdForwardOutputDim(st->pd, st->xd, nd, od)) return false;
    for (int k = 0; k < nd; k++)
        if (od[k] != yi[k]) return false;
    st->ok = true;
    return true;
}

static int pool_forward_common(nl_func *f, bool max) {
    pool_geom g;
    if (nlc_pool_geometry(f, &g)) return -1;
    pool_state *st = nlc_state<pool_state>(f);
    if (!st) return -1;
    const int dev = f->device_id;
    if (max && f->training && nl_in(f, 0)->need_grad) return nlc_max_pool_cuda_forward(f);
    if (!st->tried) pool_setup(st, g, max);
    if (!st->ok) return max ? nlc_max_pool_cuda_forward(f) : nlc_avg_pool_cuda_forward(f);
    cudnnHandle_t h = nlc_cudnn(dev);
    if (!h) return -1;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(float *, y, nlc_out(f, 0));
    if (max) st->have_argmax = false;
    NLC_CUDNN_OR(st->ok, cudnnPoolingForward(h, st->pd, &k_one, st->xd, x, &k_zero, st->yd, y),
                 max ? nlc_max_pool_cuda_forward(f) : nlc_avg_pool_cuda_forward(f));
    return 0;
}

static int pool_backward_common(nl_func *f, const bool *prop, const bool *accum, bool max) {
    if (!prop[0]) return 0;
    pool_state *st = nlc_state<pool_state>(f);
    if (!st) return -1;
    if (max && st->have_argmax) return nlc_max_pool_cuda_backward(f, prop, accum);
    const bool have_xy = nl_array_has_storage(nl_in(f, 0)->data) && nl_array_has_storage(nl_out(f, 0)->data);
    if (!st->ok || !have_xy) {
        if (!max) return nlc_avg_pool_cuda_backward(f, prop, accum);
        return nl_error("backward needs the argmax of a forward made with gradients (the node was created "
                        "without them, and the input or output data it would read again has been cleared); "
                        "build the graph with need_grad on its input");
    }
    const int dev = f->device_id;
    cudnnHandle_t h = nlc_cudnn(dev);
    if (!h) return -1;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(const float *, y, nlc_out_r(f, 0));
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
    const float beta = accum[0] ? 1.0f : 0.0f;
    /* only average pooling gets here refused (max pooling's cuDNN path is inference only) */
    NLC_CUDNN_OR(st->ok, cudnnPoolingBackward(h, st->pd, &k_one, st->yd, y, st->yd, dy, st->xd, x, &beta, st->xd, dx),
                 max ? nl_error("cudnnPoolingBackward refused a max pooling") : nlc_avg_pool_cuda_backward(f, prop, accum));
    return 0;
}

static int max_pool_forward(nl_func *f) { return pool_forward_common(f, true); }
static int avg_pool_forward(nl_func *f) { return pool_forward_common(f, false); }
static int max_pool_backward(nl_func *f, const bool *p, const bool *a) { return pool_backward_common(f, p, a, true); }
static int avg_pool_backward(nl_func *f, const bool *p, const bool *a) { return pool_backward_common(f, p, a, false); }

/* ---- batch normalization --------------------------------------------------------------- */

static bool bn_setup(nl_func *f, bn_state *st, const bn_geom &g) {
    st->tried = true;
    if (g.outer * g.inner < 2) return false;           /* n - 1 would be 0 in the unbiased variance */
    if (nl_arg_float(f, 2) < CUDNN_BN_MIN_EPSILON) return false;
    if ((nl_in(f, NLC_BN_MEAN) != nullptr) != (nl_in(f, NLC_BN_VAR) != nullptr)) return false;
    const int64_t d[4] = {g.outer, g.C, g.inner, 1};
    int di[4];
    if (!nlc_dims_fit(4, d, di)) return false;
    if (cudnnCreateTensorDescriptor(&st->xd) || cudnnCreateTensorDescriptor(&st->bnd)) return false;
    if (nlc_set_tensor(st->xd, 4, di)) return false;
    if (cudnnDeriveBNTensorDescriptor(st->bnd, st->xd, CUDNN_BATCHNORM_SPATIAL)) return false;
    st->ok = true;
    return true;
}

static int bn_forward(nl_func *f) {
    bn_geom g;
    nlc_bn_geometry(f, &g);
    bn_state *st = nlc_state<bn_state>(f);
    if (!st) return -1;
    if (!st->tried) bn_setup(f, st, g);
    if (!st->ok) return nlc_bn_cuda_forward(f);
    const int dev = f->device_id;
    cudnnHandle_t h = nlc_cudnn(dev);
    if (!h) return -1;
    const bool batch_stat = nl_arg_bool(f, 3);
    const double eps = nl_arg_float(f, 2), decay = nl_arg_float(f, 1);
    NLC_PTR(const float *, x, nlc_in(f, NLC_BN_X));
    const float *gamma = nullptr, *beta = nullptr;
    if (nl_in(f, NLC_BN_GAMMA)) { gamma = nlc_in(f, NLC_BN_GAMMA); if (!gamma) return -1; }
    else { gamma = nlc_ones(dev, g.C); if (!gamma) return -1; }
    if (nl_in(f, NLC_BN_BETA)) { beta = nlc_in(f, NLC_BN_BETA); if (!beta) return -1; }
    else { beta = nlc_zeros(dev, g.C); if (!beta) return -1; }
    NLC_PTR(float *, y, nlc_out(f, 0));
    if (batch_stat) {
        float *rm = nullptr, *rv = nullptr;
        if (nl_in(f, NLC_BN_MEAN)) {
            rm = (float *)nl_array_device(nl_in(f, NLC_BN_MEAN)->data, NL_READWRITE, dev);
            rv = (float *)nl_array_device(nl_in(f, NLC_BN_VAR)->data, NL_READWRITE, dev);
            if (!rm || !rv) return -1;
        }
        NLC_PTR(float *, saved, st->saved.get(2 * g.C, dev));
        st->have_saved = true;
        /* refused: nothing was written, the running statistics included */
        NLC_CUDNN_OR(st->ok, cudnnBatchNormalizationForwardTraining(h, CUDNN_BATCHNORM_SPATIAL, &k_one, &k_zero,
                                                                    st->xd, x, st->xd, y, st->bnd, gamma, beta,
                                                                    1.0 - decay, rm, rv, eps, saved, saved + g.C),
                     (st->have_saved = false, nlc_bn_cuda_forward(f)));
    } else {
        NLC_PTR(const float *, rm, nlc_in(f, NLC_BN_MEAN));
        NLC_PTR(const float *, rv, nlc_in(f, NLC_BN_VAR));
        NLC_CUDNN_OR(st->ok, cudnnBatchNormalizationForwardInference(h, CUDNN_BATCHNORM_SPATIAL, &k_one, &k_zero,
                                                                     st->xd, x, st->xd, y, st->bnd, gamma, beta, rm,
                                                                     rv, eps),
                     nlc_bn_cuda_forward(f));
    }
    return 0;
}

static int bn_backward(nl_func *f, const bool *prop, const bool *accum) {
    bn_state *st = nlc_state<bn_state>(f);
    if (!st) return -1;
    const bool batch_stat = nl_arg_bool(f, 3);
    /* cuDNN's backward is the batch-statistics one, and it always computes dx */
    if (!st->ok || !batch_stat || !prop[NLC_BN_X] || !st->have_saved) return nlc_bn_cuda_backward(f, prop, accum);
    bn_geom g;
    nlc_bn_geometry(f, &g);
    const int dev = f->device_id;
    cudnnHandle_t h = nlc_cudnn(dev);
    if (!h) return -1;
    const double eps = nl_arg_float(f, 2);
    NLC_PTR(const float *, x, nlc_in(f, NLC_BN_X));
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    const float *gamma_in = nullptr, *gamma = nullptr;
    if (nl_in(f, NLC_BN_GAMMA)) { gamma = gamma_in = nlc_in(f, NLC_BN_GAMMA); if (!gamma) return -1; }
    else { gamma = nlc_ones(dev, g.C); if (!gamma) return -1; }
    NLC_PTR(float *, dx, nlc_in_grad(f, NLC_BN_X, accum[NLC_BN_X]));
    nlc_buf sumsb;
    NLC_PTR(float *, sums, sumsb.get(2 * g.C, dev));   /* [dbeta (C), dgamma (C)] */
    const float beta_dx = accum[NLC_BN_X] ? 1.0f : 0.0f;
    NLC_CUDNN_OR(st->ok, cudnnBatchNormalizationBackward(h, CUDNN_BATCHNORM_SPATIAL, &k_one, &beta_dx, &k_one,
                                                         &k_zero, st->xd, x, st->xd, dy, st->xd, dx, st->bnd, gamma,
                                                         sums + g.C, sums, eps, st->saved.p, st->saved.p + g.C),
                 nlc_bn_cuda_backward(f, prop, accum));
    return nlc_bn_param_grads(f, prop, accum, g.C, sums, st->saved.p + g.C, gamma_in);
}

/* ---- softmax / log_softmax ------------------------------------------------------------------ */

struct softmax_state {
    bool tried = false, ok = false;
    cudnnTensorDescriptor_t d = nullptr;
    ~softmax_state() { if (d) cudnnDestroyTensorDescriptor(d); }
};

static int softmax_dims(nl_func *f, int64_t *outer, int64_t *C, int64_t *inner) {
    const nl_var *x = nl_in(f, 0);
    int a;
    if (nl_norm_axis("axis", nl_arg_int(f, 0), x->ndim, &a)) return -1;
    *outer = 1; *inner = 1;
    for (int d = 0; d < a; d++) *outer *= x->shape[d];
    for (int d = a + 1; d < x->ndim; d++) *inner *= x->shape[d];
    *C = x->shape[a];
    return 0;
}

static softmax_state *softmax_prepare(nl_func *f, int64_t outer, int64_t C, int64_t inner) {
    softmax_state *st = nlc_state<softmax_state>(f);
    if (!st || st->tried) return st;
    st->tried = true;
    const int64_t d[4] = {outer, C, inner, 1};
    int di[4];
    if (!nlc_dims_fit(4, d, di) || cudnnCreateTensorDescriptor(&st->d) || nlc_set_tensor(st->d, 4, di)) return st;
    st->ok = true;
    return st;
}

static int softmax_fwd(nl_func *f, bool log) {
    int64_t outer, C, inner;
    if (softmax_dims(f, &outer, &C, &inner)) return -1;
    softmax_state *st = softmax_prepare(f, outer, C, inner);
    if (!st) return -1;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(float *, y, nlc_out(f, 0));
    if (!st->ok) return nlc_softmax_forward(f->device_id, x, y, outer, C, inner, log);
    cudnnHandle_t h = nlc_cudnn(f->device_id);
    if (!h) return -1;
    NLC_CUDNN_OR(st->ok, cudnnSoftmaxForward(h, log ? CUDNN_SOFTMAX_LOG : CUDNN_SOFTMAX_ACCURATE,
                                             CUDNN_SOFTMAX_MODE_CHANNEL, &k_one, st->d, x, &k_zero, st->d, y),
                 nlc_softmax_forward(f->device_id, x, y, outer, C, inner, log));
    return 0;
}

static int softmax_bwd(nl_func *f, const bool *prop, const bool *accum, bool log) {
    if (!prop[0]) return 0;
    int64_t outer, C, inner;
    if (softmax_dims(f, &outer, &C, &inner)) return -1;
    softmax_state *st = softmax_prepare(f, outer, C, inner);
    if (!st) return -1;
    NLC_PTR(const float *, y, nlc_out_r(f, 0));
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
    if (!st->ok) return nlc_softmax_backward(f->device_id, y, dy, dx, outer, C, inner, log, accum[0]);
    cudnnHandle_t h = nlc_cudnn(f->device_id);
    if (!h) return -1;
    const float beta = accum[0] ? 1.0f : 0.0f;
    NLC_CUDNN_OR(st->ok, cudnnSoftmaxBackward(h, log ? CUDNN_SOFTMAX_LOG : CUDNN_SOFTMAX_ACCURATE,
                                              CUDNN_SOFTMAX_MODE_CHANNEL, &k_one, st->d, y, st->d, dy, &beta, st->d, dx),
                 nlc_softmax_backward(f->device_id, y, dy, dx, outer, C, inner, log, accum[0]));
    return 0;
}

static int softmax_forward(nl_func *f) { return softmax_fwd(f, false); }
static int log_softmax_forward(nl_func *f) { return softmax_fwd(f, true); }
static int softmax_backward(nl_func *f, const bool *p, const bool *a) { return softmax_bwd(f, p, a, false); }
static int log_softmax_backward(nl_func *f, const bool *p, const bool *a) { return softmax_bwd(f, p, a, true); }

/* ---- activations: tanh, sigmoid, relu --------------------------------------------------- */

struct act_state {
    bool tried = false, ok = false;
    cudnnTensorDescriptor_t d = nullptr;
    cudnnActivationDescriptor_t ad = nullptr;
    ~act_state() {
        if (d) cudnnDestroyTensorDescriptor(d);
        if (ad) cudnnDestroyActivationDescriptor(ad);
    }
};

enum { ACT_TANH, ACT_SIGMOID, ACT_RELU, ACT_N };
static const char *const act_names[ACT_N] = {"tanh", "sigmoid", "relu"};
static const cudnnActivationMode_t act_modes[ACT_N] = {CUDNN_ACTIVATION_TANH, CUDNN_ACTIVATION_SIGMOID,
                                                       CUDNN_ACTIVATION_RELU};
static nl_forward_fn act_cuda_fwd[ACT_N];
static nl_backward_fn act_cuda_bwd[ACT_N];

static act_state *act_prepare(nl_func *f, int which) {
    act_state *st = nlc_state<act_state>(f);
    if (!st || st->tried) return st;
    st->tried = true;
    const int64_t d[4] = {1, 1, 1, nl_in(f, 0)->size};
    int di[4];
    if (!nlc_dims_fit(4, d, di) || cudnnCreateTensorDescriptor(&st->d) || nlc_set_tensor(st->d, 4, di) ||
        cudnnCreateActivationDescriptor(&st->ad) ||
        cudnnSetActivationDescriptor(st->ad, act_modes[which], CUDNN_NOT_PROPAGATE_NAN, 0.0))
        return st;
    st->ok = true;
    return st;
}

template <int W> static int act_forward(nl_func *f) {
    act_state *st = act_prepare(f, W);
    if (!st) return -1;
    if (!st->ok) return act_cuda_fwd[W](f);
    cudnnHandle_t h = nlc_cudnn(f->device_id);
    if (!h) return -1;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(float *, y, nlc_out(f, 0));
    NLC_CUDNN_OR(st->ok, cudnnActivationForward(h, st->ad, &k_one, st->d, x, &k_zero, st->d, y), act_cuda_fwd[W](f));
    return 0;
}

template <int W> static int act_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    act_state *st = act_prepare(f, W);
    if (!st) return -1;
    /* cuDNN reads x and y; the graph keeps only what the CPU backward declares it reads */
    if (!st->ok || !nl_array_has_storage(nl_in(f, 0)->data) || !nl_array_has_storage(nl_out(f, 0)->data))
        return act_cuda_bwd[W](f, prop, accum);
    cudnnHandle_t h = nlc_cudnn(f->device_id);
    if (!h) return -1;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(const float *, y, nlc_out_r(f, 0));
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
    const float beta = accum[0] ? 1.0f : 0.0f;
    NLC_CUDNN_OR(st->ok, cudnnActivationBackward(h, st->ad, &k_one, st->d, y, st->d, dy, st->d, x, &beta, st->d, dx),
                 act_cuda_bwd[W](f, prop, accum));
    return 0;
}

int nlc_register_cudnn(void) {
    for (int i = 0; i < ACT_N; i++)
        if (nlc_elementwise_impl(act_names[i], &act_cuda_fwd[i], &act_cuda_bwd[i])) return -1;
    if (nlc_register("convolution", "cudnn", conv_forward, conv_backward)) return -1;
    if (nlc_register("max_pooling", "cudnn", max_pool_forward, max_pool_backward)) return -1;
    if (nlc_register("average_pooling", "cudnn", avg_pool_forward, avg_pool_backward)) return -1;
    if (nlc_register("batch_normalization", "cudnn", bn_forward, bn_backward)) return -1;
    if (nlc_register("softmax", "cudnn", softmax_forward, softmax_backward)) return -1;
    if (nlc_register("log_softmax", "cudnn", log_softmax_forward, log_softmax_backward)) return -1;
    if (nlc_register("tanh", "cudnn", act_forward<ACT_TANH>, act_backward<ACT_TANH>)) return -1;
    if (nlc_register("sigmoid", "cudnn", act_forward<ACT_SIGMOID>, act_backward<ACT_SIGMOID>)) return -1;
    if (nlc_register("relu", "cudnn", act_forward<ACT_RELU>, act_backward<ACT_RELU>)) return -1;
    return 0;
}
