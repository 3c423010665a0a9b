/*
 * layers.cuh - geometry of the layer functions as the CUDA and cuDNN implementations
 * see it, rebuilt from a node's arguments and input shapes exactly as the CPU setup in
 * core/functions (which has validated them) derives it, and the CUDA-kernel versions that
 * the cuDNN implementations fall back to.
 */
#ifndef NNLUA_CUDA_LAYERS_CUH
#define NNLUA_CUDA_LAYERS_CUH
#include "common.cuh"

/* convolution(x, weight, bias; base_axis, pad, stride, dilation, group, channel_last):
 * x (outer, C, I...), weight (OC, C/group, K...), y (outer, OC, O...); 1 to 3 spatial
 * axes, padded in front with size-1 axes to 3 (index 0 is the first spatial axis). */
struct conv_geom {
    int sd;
    int64_t outer, c, oc, group, ocg, cg, kg, p_in, p_out;
    int64_t in[3], out[3], k[3], pad[3], stride[3], dil[3];
};
int nlc_conv_geometry(nl_func *f, conv_geom *g);
/* Per-node state: the cuDNN descriptors and chosen algorithms (the CUDA path needs none). */
struct conv_state {
    bool tried = false, ok = false;            /* cuDNN set up / usable for this node */
    cudnnTensorDescriptor_t xd = nullptr, yd = nullptr, bd = nullptr;
    cudnnFilterDescriptor_t wd = nullptr;
    cudnnConvolutionDescriptor_t cd = nullptr;
    bool have_fwd = false, have_bwd_data = false, have_bwd_filter = false;
    cudnnConvolutionFwdAlgo_t fwd_algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
    cudnnConvolutionBwdDataAlgo_t bwd_data_algo = CUDNN_CONVOLUTION_BWD_DATA_ALGO_0;
    cudnnConvolutionBwdFilterAlgo_t bwd_filter_algo = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0;
    size_t fwd_ws = 0, bwd_data_ws = 0, bwd_filter_ws = 0;
    ~conv_state() {
        if (xd) cudnnDestroyTensorDescriptor(xd);
        if (yd) cudnnDestroyTensorDescriptor(yd);
        if (bd) cudnnDestroyTensorDescriptor(bd);
        if (wd) cudnnDestroyFilterDescriptor(wd);
        if (cd) cudnnDestroyConvolutionDescriptor(cd);
    }
};
int nlc_conv_cuda_forward(nl_func *f);
int nlc_conv_cuda_backward(nl_func *f, const bool *prop, const bool *accum);

/* max/average pooling over the last len(kernel) axes (padded in front to 3) */
struct pool_geom {
    int64_t maps;
    int64_t in[3], out[3], k[3], stride[3], pad[3];
    int64_t in_size, out_size;
    int sd;
    bool including_pad, ignore_border;
};
int nlc_pool_geometry(nl_func *f, pool_geom *g);
struct pool_state {
    nlc_buf argmax;                            /* max pooling: int32 offsets in each map */
    bool have_argmax = false;
    bool tried = false, ok = false;            /* cuDNN descriptors */
    cudnnPoolingDescriptor_t pd = nullptr;
    cudnnTensorDescriptor_t xd = nullptr, yd = nullptr;
    ~pool_state() {
        if (pd) cudnnDestroyPoolingDescriptor(pd);
        if (xd) cudnnDestroyTensorDescriptor(xd);
        if (yd) cudnnDestroyTensorDescriptor(yd);
    }
};
int nlc_max_pool_cuda_forward(nl_func *f);
int nlc_max_pool_cuda_backward(nl_func *f, const bool *prop, const bool *accum);
int nlc_avg_pool_cuda_forward(nl_func *f);
int nlc_avg_pool_cuda_backward(nl_func *f, const bool *prop, const bool *accum);

/* batch_normalization: x (outer, C, inner) around the kept axes */
enum { NLC_BN_X, NLC_BN_BETA, NLC_BN_GAMMA, NLC_BN_MEAN, NLC_BN_VAR };
struct bn_geom { int64_t outer, C, inner; };
void nlc_bn_geometry(nl_func *f, bn_geom *g);
/* The node's saved batch mean and 1/sqrt(var + eps) (2C floats) live in this state; the
 * cuDNN and the CUDA implementations write the same layout. */
struct bn_state {
    nlc_buf saved;
    bool have_saved = false;
    bool tried = false, ok = false;            /* cuDNN descriptors */
    cudnnTensorDescriptor_t xd = nullptr, bnd = nullptr;
    ~bn_state() {
        if (xd) cudnnDestroyTensorDescriptor(xd);
        if (bnd) cudnnDestroyTensorDescriptor(bnd);
    }
};
int nlc_bn_cuda_forward(nl_func *f);
int nlc_bn_cuda_backward(nl_func *f, const bool *prop, const bool *accum);
/* Writes or adds the gradients of beta, gamma (and mean, variance) from the per-channel
 * sums[c] = sum dy, sums[C + c] = sum dy * xhat; s: 1/sqrt(var + eps) per channel. */
int nlc_bn_param_grads(nl_func *f, const bool *prop, const bool *accum, int64_t C, const float *sums,
                       const float *s, const float *gamma);

/* affine: x (m, k), weight (k, n), y (m, n) */
struct affine_geom { int64_t m, k, n; };
void nlc_affine_geometry(nl_func *f, affine_geom *g);

#endif
