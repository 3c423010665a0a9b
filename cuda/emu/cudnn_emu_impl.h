/*
 * cuda/emu/cudnn_emu_impl.h - TEST-ONLY: what the files of the cuDNN emulation
 * (cudnn_emu.cpp: handle and descriptors; cudnn_emu_conv.cpp: convolution, bias, add;
 * cudnn_emu_ops.cpp: pooling, batch norm, softmax, activations) share: the descriptor
 * structs, strided tensor indexing, the alpha/beta blend, the split of a tensor's axes
 * into "slots" (kept) and "reduced" axes used by batch norm and softmax, the call counters
 * and the NNLUA_CUDA_EMU_CUDNN_REJECT test knob (NLC_EMU_REJECTABLE).
 */
#ifndef NNLUA_CUDA_EMU_CUDNN_IMPL_H
#define NNLUA_CUDA_EMU_CUDNN_IMPL_H
#include "cudnn.h"
#include <stdint.h>

struct nlc_emu_cudnn {
    unsigned magic;
    cudaStream_t stream;
};
enum : unsigned { NLC_EMU_CUDNN_MAGIC = 0xc0d9u };

struct nlc_emu_cudnn_tensor {
    bool set = false;
    cudnnDataType_t type = CUDNN_DATA_FLOAT;
    int nd = 0;
    int dim[CUDNN_DIM_MAX] = {};
    int64_t stride[CUDNN_DIM_MAX] = {};
};
struct nlc_emu_cudnn_filter {
    bool set = false;
    cudnnDataType_t type = CUDNN_DATA_FLOAT;
    cudnnTensorFormat_t format = CUDNN_TENSOR_NCHW;
    int nd = 0;
    int dim[CUDNN_DIM_MAX] = {};
};
struct nlc_emu_cudnn_conv {
    bool set = false;
    int n = 0;                                  /* spatial dims (arrayLength) */
    int pad[CUDNN_DIM_MAX] = {}, stride[CUDNN_DIM_MAX] = {}, dil[CUDNN_DIM_MAX] = {};
    cudnnConvolutionMode_t mode = CUDNN_CONVOLUTION;
    cudnnDataType_t compute = CUDNN_DATA_FLOAT;
    int groups = 1;
    cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};
struct nlc_emu_cudnn_pooling {
    bool set = false;
    cudnnPoolingMode_t mode = CUDNN_POOLING_MAX;
    cudnnNanPropagation_t nan = CUDNN_NOT_PROPAGATE_NAN;
    int n = 0;
    int win[CUDNN_DIM_MAX] = {}, pad[CUDNN_DIM_MAX] = {}, stride[CUDNN_DIM_MAX] = {};
};
struct nlc_emu_cudnn_activation {
    bool set = false;
    cudnnActivationMode_t mode = CUDNN_ACTIVATION_RELU;
    cudnnNanPropagation_t nan = CUDNN_NOT_PROPAGATE_NAN;
    double coef = 0.0;
};

namespace nlc_cudnn_emu {

typedef nlc_emu_cudnn_tensor tensor;

/* counts a call that computes something, in all and per entry point (the spec checks
 * that cuDNN paths ran); NNLUA_CUDA_EMU_TRACE_CUDNN=1 prints its name to stderr */
void counted(const char *fn);

/* Whether entry point fn is refused by the test knob NNLUA_CUDA_EMU_CUDNN_REJECT (read at
 * every call): a comma list of names, each matching the entry points it is a prefix of
 * (so an exact name, or e.g. "cudnnGetConvolutionBackwardFilter" for that algorithm query
 * and workspace query), or "all". Counts (and traces) a refusal. */
bool rejected(const char *fn);
}  // namespace nlc_cudnn_emu

/* First statement of an entry point where real cuDNN can answer NOT_SUPPORTED (the
 * descriptor setters, the algorithm and workspace queries, the compute calls): refused by
 * the knob, it returns that before looking at its arguments or touching any output. */
#define NLC_EMU_REJECTABLE()                                                          \
    do {                                                                              \
        if (nlc_cudnn_emu::rejected(__func__)) return CUDNN_STATUS_NOT_SUPPORTED;    \
    } while (0)

namespace nlc_cudnn_emu {

bool handle_ok(cudnnHandle_t h);
/* a set float tensor descriptor */
bool float_tensor(const tensor *t);
int64_t count(const tensor *t);
bool same_dims(const tensor *a, const tensor *b);
/* element idx (t->nd indices) -> offset in elements */
static inline int64_t offset(const tensor *t, const int *idx) {
    int64_t o = 0;
    for (int k = 0; k < t->nd; k++) o += (int64_t)idx[k] * t->stride[k];
    return o;
}
/* row-major index i of dims (nd) -> idx */
static inline void unravel(int64_t i, int nd, const int *dims, int *idx) {
    for (int k = nd - 1; k >= 0; k--) {
        idx[k] = (int)(i % dims[k]);
        i /= dims[k];
    }
}
/* the scaling factors of float data (host pointers, as cuDNN reads them) */
static inline double scal(const void *p) { return (double)*(const float *)p; }
/* dst = alpha * v + beta * dst; dst is not read when beta is 0 (cuDNN's rule) */
static inline void blend(float *dst, double v, double alpha, double beta) {
    *dst = beta == 0.0 ? (float)(alpha * v) : (float)(alpha * v + beta * (double)*dst);
}

/* A tensor's axes split into slots (the kept axes, size 1 on the reduced ones) and the
 * reduced axes (size 1 on the kept ones): element (slot s, r) has idx = slot idx + r idx. */
struct split {
    int nd;
    int sdim[CUDNN_DIM_MAX], rdim[CUDNN_DIM_MAX];
    int64_t slots, per;
    split(const tensor *t, const bool *reduced) {
        nd = t->nd;
        slots = per = 1;
        for (int k = 0; k < nd; k++) {
            sdim[k] = reduced[k] ? 1 : t->dim[k];
            rdim[k] = reduced[k] ? t->dim[k] : 1;
            slots *= sdim[k];
            per *= rdim[k];
        }
    }
    /* the index of element r of slot s */
    void index(int64_t s, int64_t r, int *idx) const {
        int a[CUDNN_DIM_MAX], b[CUDNN_DIM_MAX];
        unravel(s, nd, sdim, a);
        unravel(r, nd, rdim, b);
        for (int k = 0; k < nd; k++) idx[k] = a[k] + b[k];
    }
};

}  // namespace nlc_cudnn_emu

#endif
