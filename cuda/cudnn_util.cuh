/*
 * cudnn_util.cuh - what the cuDNN files (cudnn.cu, cudnn_deconv.cu) share: int range
 * checks for descriptor sizes, packed NCHW-style tensor descriptors, the workspace limit
 * (NNLUA_CUDNN_WORKSPACE_MB, default 1024, at most half the device's free memory), which
 * math types an algorithm may use (no tensor-op math unless NNLUA_ALLOW_TF32=1) and what a
 * compute call's status means for its caller (nlc_cudnn_ran).
 */
#ifndef NNLUA_CUDA_CUDNN_UTIL_CUH
#define NNLUA_CUDA_CUDNN_UTIL_CUH
#include "common.cuh"
#include <limits.h>
#include <stdlib.h>

static inline bool nlc_fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

/* The status of a compute call: 0 done; 1 refused (CUDNN_STATUS_NOT_SUPPORTED, which cuDNN
 * reports from its configuration checks, before any work: the destination is untouched), for
 * the caller to do that work another way; -1 any other failure (recorded, naming what). */
static inline int nlc_cudnn_ran(cudnnStatus_t s, const char *what) {
    if (s == CUDNN_STATUS_SUCCESS) return 0;
    if (s == CUDNN_STATUS_NOT_SUPPORTED) return 1;
    return nlc_cudnn_err(s, what);
}

/* A packed NCHW-style descriptor of nd dims (nd <= 8). Returns the cuDNN status. */
static inline cudnnStatus_t nlc_set_tensor(cudnnTensorDescriptor_t d, int nd, const int *dims) {
    int strides[8];
    strides[nd - 1] = 1;
    for (int k = nd - 2; k >= 0; k--) strides[k] = strides[k + 1] * dims[k + 1];
    return cudnnSetTensorNdDescriptor(d, CUDNN_DATA_FLOAT, nd, dims, strides);
}

/* dims (nd of them, each >= 1, product <= INT_MAX) -> out as ints; false when they don't fit */
static inline bool nlc_dims_fit(int nd, const int64_t *dims, int *out) {
    int64_t total = 1;
    for (int k = 0; k < nd; k++) {
        if (!nlc_fits_int(dims[k]) || dims[k] < 1) return false;
        out[k] = (int)dims[k];
        total *= dims[k];
        if (total > INT_MAX) return false;
    }
    return true;
}

/* bytes of workspace an algorithm may use on device dev */
static inline size_t nlc_workspace_limit(int dev) {
    static long long mb = -2;
    if (mb == -2) {
        const char *s = getenv("NNLUA_CUDNN_WORKSPACE_MB");
        mb = (s && *s) ? atoll(s) : 1024;
        if (mb < 0) mb = 0;
    }
    size_t lim = (size_t)mb << 20;
    size_t free_b = 0, total_b = 0;
    if (nlc_set_device(dev) == 0 && cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) {
        if (free_b / 2 < lim) lim = free_b / 2;
    }
    cudaGetLastError();
    return lim;
}

/* an algorithm's math type is acceptable: FP32 unless TF32 is allowed */
static inline bool nlc_math_ok(cudnnMathType_t m) {
    return nlc_allow_tf32() || (m != CUDNN_TENSOR_OP_MATH && m != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION);
}

#endif
