/*
 * cuda/emu/cudnn_emu.cpp - TEST-ONLY CPU emulation of cuDNN (cuda/emu/cudnn.h; make
 * cuda-emu): version and status strings, the handle, and the descriptors (tensor Nd with
 * strides, filter Nd, convolution Nd with groups and math type, pooling Nd, activation,
 * the derived batch-norm descriptor). Setters check their arguments as cuDNN documents
 * (non-positive sizes or strides, negative pads: BAD_PARAM; more than CUDNN_DIM_MAX dims:
 * NOT_SUPPORTED); a descriptor that was created but never set is BAD_PARAM where used.
 * The compute calls are in cudnn_emu_conv.cpp and cudnn_emu_ops.cpp.
 * Test knob NNLUA_CUDA_EMU_CUDNN_REJECT (read at every call, so a test can change it with
 * setenv): a comma list of entry-point names or name prefixes, or "all"; the setters, the
 * algorithm and workspace queries and the compute calls it names return
 * CUDNN_STATUS_NOT_SUPPORTED, as real cuDNN may, before any work (create/destroy, the
 * handle, cudnnGetErrorString/Version and the output-size queries are never refused).
 * Test hooks (extern "C"): nl_cuda_emu_cudnn_calls() the calls that computed something,
 * nl_cuda_emu_cudnn_calls_of(prefix) those of the entry points whose names start with
 * prefix, nl_cuda_emu_cudnn_rejects() the calls the knob refused.
 */
#include "cudnn_emu_impl.h"
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <map>
#include <new>
#include <string>

namespace nlc_cudnn_emu {

static long long g_calls = 0, g_rejects = 0;
static std::map<std::string, long long> g_calls_of;   /* entry point -> calls */

static bool tracing() {
    static int trace = -1;
    if (trace < 0) {
        const char *s = getenv("NNLUA_CUDA_EMU_TRACE_CUDNN");
        trace = s && s[0] == '1';
    }
    return trace != 0;
}

void counted(const char *fn) {
    g_calls++;
    g_calls_of[fn]++;
    if (tracing()) fprintf(stderr, "cudnn-emu: %s\n", fn);
}

bool rejected(const char *fn) {
    const char *s = getenv("NNLUA_CUDA_EMU_CUDNN_REJECT");
    if (!s) return false;
    const size_t n = strlen(fn);
    while (*s) {
        while (*s == ',' || *s == ' ') s++;
        const char *e = s;
        while (*e && *e != ',') e++;
        size_t len = (size_t)(e - s);
        while (len > 0 && s[len - 1] == ' ') len--;
        const bool hit = (len == 3 && strncmp(s, "all", 3) == 0) || (len > 0 && len <= n && strncmp(fn, s, len) == 0);
        if (hit) {
            g_rejects++;
            if (tracing()) fprintf(stderr, "cudnn-emu: %s refused (NNLUA_CUDA_EMU_CUDNN_REJECT)\n", fn);
            return true;
        }
        s = e;
    }
    return false;
}

bool handle_ok(cudnnHandle_t h) { return h && h->magic == NLC_EMU_CUDNN_MAGIC; }
bool float_tensor(const tensor *t) { return t && t->set && t->type == CUDNN_DATA_FLOAT; }
int64_t count(const tensor *t) {
    int64_t n = 1;
    for (int k = 0; k < t->nd; k++) n *= t->dim[k];
    return n;
}
bool same_dims(const tensor *a, const tensor *b) {
    if (a->nd != b->nd) return false;
    for (int k = 0; k < a->nd; k++)
        if (a->dim[k] != b->dim[k]) return false;
    return true;
}

}  // namespace nlc_cudnn_emu

using namespace nlc_cudnn_emu;

extern "C" long long nl_cuda_emu_cudnn_calls(void) { return g_calls; }
extern "C" long long nl_cuda_emu_cudnn_calls_of(const char *prefix) {
    long long n = 0;
    const size_t len = prefix ? strlen(prefix) : 0;
    for (const auto &e : g_calls_of)
        if (e.first.compare(0, len, prefix ? prefix : "", len) == 0) n += e.second;
    return n;
}
extern "C" long long nl_cuda_emu_cudnn_rejects(void) { return g_rejects; }

size_t cudnnGetVersion(void) { return CUDNN_VERSION; }

const char *cudnnGetErrorString(cudnnStatus_t s) {
    switch (s) {
    case CUDNN_STATUS_SUCCESS: return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_NOT_INITIALIZED: return "CUDNN_STATUS_NOT_INITIALIZED";
    case CUDNN_STATUS_BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM";
    case CUDNN_STATUS_INVALID_VALUE: return "CUDNN_STATUS_INVALID_VALUE";
    case CUDNN_STATUS_BAD_PARAM_NULL_POINTER: return "CUDNN_STATUS_BAD_PARAM_NULL_POINTER";
    case CUDNN_STATUS_NOT_SUPPORTED: return "CUDNN_STATUS_NOT_SUPPORTED";
    case CUDNN_STATUS_INTERNAL_ERROR: return "CUDNN_STATUS_INTERNAL_ERROR";
    case CUDNN_STATUS_ALLOC_FAILED: return "CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED";
    case CUDNN_STATUS_EXECUTION_FAILED: return "CUDNN_STATUS_EXECUTION_FAILED";
    }
    return "CUDNN_UNKNOWN_STATUS";
}

/* ---- handle --------------------------------------------------------------------------------- */

cudnnStatus_t cudnnCreate(cudnnHandle_t *h) {
    if (!h) return CUDNN_STATUS_BAD_PARAM;
    *h = new (std::nothrow) nlc_emu_cudnn{NLC_EMU_CUDNN_MAGIC, nullptr};
    return *h ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_ALLOC_FAILED;
}
cudnnStatus_t cudnnDestroy(cudnnHandle_t h) {
    if (!handle_ok(h)) return CUDNN_STATUS_BAD_PARAM;
    h->magic = 0;
    delete h;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetStream(cudnnHandle_t h, cudaStream_t s) {
    if (!handle_ok(h)) return CUDNN_STATUS_BAD_PARAM;
    h->stream = s;
    return CUDNN_STATUS_SUCCESS;
}

/* ---- create / destroy ------------------------------------------------------------------------ */

template <class T> static cudnnStatus_t create(T **d) {
    if (!d) return CUDNN_STATUS_BAD_PARAM;
    *d = new (std::nothrow) T();
    return *d ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_ALLOC_FAILED;
}
template <class T> static cudnnStatus_t destroy(T *d) {
    delete d;                                   /* destroying NULL is a success, as in cuDNN */
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t *d) { return create(d); }
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t d) { return destroy(d); }
cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t *d) { return create(d); }
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t d) { return destroy(d); }
cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t *d) { return create(d); }
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t d) { return destroy(d); }
cudnnStatus_t cudnnCreatePoolingDescriptor(cudnnPoolingDescriptor_t *d) { return create(d); }
cudnnStatus_t cudnnDestroyPoolingDescriptor(cudnnPoolingDescriptor_t d) { return destroy(d); }
cudnnStatus_t cudnnCreateActivationDescriptor(cudnnActivationDescriptor_t *d) { return create(d); }
cudnnStatus_t cudnnDestroyActivationDescriptor(cudnnActivationDescriptor_t d) { return destroy(d); }

/* ---- setters ------------------------------------------------------------------------------- */

static bool type_ok(cudnnDataType_t t) { return t == CUDNN_DATA_FLOAT || t == CUDNN_DATA_DOUBLE || t == CUDNN_DATA_HALF; }

static cudnnStatus_t set_tensor(cudnnTensorDescriptor_t d, cudnnDataType_t type, int nbDims, const int dimA[],
                                const int strideA[]) {
    if (!d || !dimA || !strideA || !type_ok(type)) return CUDNN_STATUS_BAD_PARAM;
    if (nbDims < 3 || nbDims > CUDNN_DIM_MAX) return CUDNN_STATUS_NOT_SUPPORTED;
    int64_t total = 1;
    for (int k = 0; k < nbDims; k++) {
        if (dimA[k] <= 0 || strideA[k] <= 0) return CUDNN_STATUS_BAD_PARAM;
        total *= dimA[k];
    }
    if (total > INT_MAX) return CUDNN_STATUS_NOT_SUPPORTED;     /* more than 2 Giga-elements */
    d->set = true;
    d->type = type;
    d->nd = nbDims;
    for (int k = 0; k < nbDims; k++) {
        d->dim[k] = dimA[k];
        d->stride[k] = strideA[k];
    }
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetTensorNdDescriptor(cudnnTensorDescriptor_t d, cudnnDataType_t type, int nbDims, const int dimA[],
                                         const int strideA[]) {
    NLC_EMU_REJECTABLE();
    return set_tensor(d, type, nbDims, dimA, strideA);
}

cudnnStatus_t cudnnSetFilterNdDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t type, cudnnTensorFormat_t format,
                                         int nbDims, const int filterDimA[]) {
    NLC_EMU_REJECTABLE();
    if (!d || !filterDimA || !type_ok(type) || nbDims < 3) return CUDNN_STATUS_BAD_PARAM;
    if (format != CUDNN_TENSOR_NCHW && format != CUDNN_TENSOR_NHWC && format != CUDNN_TENSOR_NCHW_VECT_C)
        return CUDNN_STATUS_BAD_PARAM;
    if (nbDims > CUDNN_DIM_MAX) return CUDNN_STATUS_NOT_SUPPORTED;
    for (int k = 0; k < nbDims; k++)
        if (filterDimA[k] <= 0) return CUDNN_STATUS_BAD_PARAM;
    d->set = true;
    d->type = type;
    d->format = format;
    d->nd = nbDims;
    for (int k = 0; k < nbDims; k++) d->dim[k] = filterDimA[k];
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolutionNdDescriptor(cudnnConvolutionDescriptor_t d, int arrayLength, const int padA[],
                                              const int filterStrideA[], const int dilationA[],
                                              cudnnConvolutionMode_t mode, cudnnDataType_t computeType) {
    NLC_EMU_REJECTABLE();
    if (!d || !padA || !filterStrideA || !dilationA || arrayLength < 1 || !type_ok(computeType))
        return CUDNN_STATUS_BAD_PARAM;
    if (mode != CUDNN_CONVOLUTION && mode != CUDNN_CROSS_CORRELATION) return CUDNN_STATUS_BAD_PARAM;
    if (arrayLength > CUDNN_DIM_MAX - 2) return CUDNN_STATUS_NOT_SUPPORTED;
    for (int k = 0; k < arrayLength; k++)
        if (padA[k] < 0 || filterStrideA[k] <= 0 || dilationA[k] <= 0) return CUDNN_STATUS_BAD_PARAM;
    d->set = true;
    d->n = arrayLength;
    for (int k = 0; k < arrayLength; k++) {
        d->pad[k] = padA[k];
        d->stride[k] = filterStrideA[k];
        d->dil[k] = dilationA[k];
    }
    d->mode = mode;
    d->compute = computeType;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolutionGroupCount(cudnnConvolutionDescriptor_t d, int groupCount) {
    NLC_EMU_REJECTABLE();
    if (!d || groupCount < 1) return CUDNN_STATUS_BAD_PARAM;
    d->groups = groupCount;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t m) {
    NLC_EMU_REJECTABLE();
    if (!d || (m != CUDNN_DEFAULT_MATH && m != CUDNN_TENSOR_OP_MATH && m != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION &&
               m != CUDNN_FMA_MATH))
        return CUDNN_STATUS_BAD_PARAM;
    d->math = m;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetPoolingNdDescriptor(cudnnPoolingDescriptor_t d, const cudnnPoolingMode_t mode,
                                          const cudnnNanPropagation_t nan, int nbDims, const int windowDimA[],
                                          const int paddingA[], const int strideA[]) {
    NLC_EMU_REJECTABLE();
    if (!d || !windowDimA || !paddingA || !strideA || nbDims < 1) return CUDNN_STATUS_BAD_PARAM;
    if (mode != CUDNN_POOLING_MAX && mode != CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING &&
        mode != CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING && mode != CUDNN_POOLING_MAX_DETERMINISTIC)
        return CUDNN_STATUS_BAD_PARAM;
    if (nan != CUDNN_NOT_PROPAGATE_NAN && nan != CUDNN_PROPAGATE_NAN) return CUDNN_STATUS_BAD_PARAM;
    if (nbDims > CUDNN_DIM_MAX - 2) return CUDNN_STATUS_NOT_SUPPORTED;
    for (int k = 0; k < nbDims; k++)
        if (windowDimA[k] <= 0 || strideA[k] <= 0 || paddingA[k] < 0) return CUDNN_STATUS_BAD_PARAM;
    d->set = true;
    d->mode = mode;
    d->nan = nan;
    d->n = nbDims;
    for (int k = 0; k < nbDims; k++) {
        d->win[k] = windowDimA[k];
        d->pad[k] = paddingA[k];
        d->stride[k] = strideA[k];
    }
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetActivationDescriptor(cudnnActivationDescriptor_t d, cudnnActivationMode_t mode,
                                           cudnnNanPropagation_t nan, double coef) {
    NLC_EMU_REJECTABLE();
    if (!d || (int)mode < CUDNN_ACTIVATION_SIGMOID || (int)mode > CUDNN_ACTIVATION_SWISH) return CUDNN_STATUS_BAD_PARAM;
    if (nan != CUDNN_NOT_PROPAGATE_NAN && nan != CUDNN_PROPAGATE_NAN) return CUDNN_STATUS_BAD_PARAM;
    d->set = true;
    d->mode = mode;
    d->nan = nan;
    d->coef = coef;
    return CUDNN_STATUS_SUCCESS;
}

/* spatial: 1 x C x 1 x 1 (x 1); per activation: 1 x C x H x W (x D); packed; x's type */
cudnnStatus_t cudnnDeriveBNTensorDescriptor(cudnnTensorDescriptor_t derived, const cudnnTensorDescriptor_t x,
                                            cudnnBatchNormMode_t mode) {
    NLC_EMU_REJECTABLE();
    if (!derived || !x || !x->set) return CUDNN_STATUS_BAD_PARAM;
    if (mode != CUDNN_BATCHNORM_PER_ACTIVATION && mode != CUDNN_BATCHNORM_SPATIAL &&
        mode != CUDNN_BATCHNORM_SPATIAL_PERSISTENT)
        return CUDNN_STATUS_BAD_PARAM;
    if (x->nd != 4 && x->nd != 5) return CUDNN_STATUS_BAD_PARAM;
    int dim[CUDNN_DIM_MAX], stride[CUDNN_DIM_MAX];
    for (int k = 0; k < x->nd; k++) dim[k] = (k == 1 || (k > 1 && mode == CUDNN_BATCHNORM_PER_ACTIVATION)) ? x->dim[k] : 1;
    stride[x->nd - 1] = 1;
    for (int k = x->nd - 2; k >= 0; k--) stride[k] = stride[k + 1] * dim[k + 1];
    const cudnnDataType_t t = x->type == CUDNN_DATA_DOUBLE ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
    return set_tensor(derived, t, x->nd, dim, stride);     /* not refused as cudnnSetTensorNdDescriptor */
}
