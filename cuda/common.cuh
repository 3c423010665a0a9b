/*
 * common.cuh - what every file of the CUDA/cuDNN backend (libnnlua_cuda.so) shares:
 * the engine headers (C, hence extern "C"), status-to-error conversion, the device and
 * its library handles, the caching allocator, device pointers of a node's inputs and
 * outputs, per-node device state, launch helpers, and the shared reductions.
 *
 * Everything runs on the legacy default stream of the node's device, so kernels, cuBLAS,
 * cuDNN and the host<->device copies of the synced arrays are ordered without events,
 * and a block returned to the caching allocator may be handed out again at once.
 * Errors never abort: each CUDA/cuBLAS/cuDNN status becomes an nl_error message and the
 * implementation returns -1, which the graph turns into a Lua error naming the function.
 */
#ifndef NNLUA_CUDA_COMMON_CUH
#define NNLUA_CUDA_COMMON_CUH

extern "C" {
#include "function.h"
#include "device.h"
#include "elementwise.h"
}
#include "nnlua_cuda.h"
#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <cudnn.h>
#include <stdint.h>
#include <new>

/* ---- errors: each returns -1 after recording the message -------------------------- */
int nlc_cuda_err(cudaError_t e, const char *what);
int nlc_cublas_err(cublasStatus_t s, const char *what);
int nlc_cudnn_err(cudnnStatus_t s, const char *what);

#define NLC_CUDA(call)                                                 \
    do {                                                               \
        cudaError_t e_ = (call);                                       \
        if (e_ != cudaSuccess) return nlc_cuda_err(e_, #call);         \
    } while (0)
#define NLC_CUBLAS(call)                                               \
    do {                                                               \
        cublasStatus_t s_ = (call);                                    \
        if (s_ != CUBLAS_STATUS_SUCCESS) return nlc_cublas_err(s_, #call); \
    } while (0)
#define NLC_CUDNN(call)                                                \
    do {                                                               \
        cudnnStatus_t s_ = (call);                                     \
        if (s_ != CUDNN_STATUS_SUCCESS) return nlc_cudnn_err(s_, #call); \
    } while (0)
/* After a kernel launch: a bad configuration or a missing kernel image is reported here
 * (faults inside kernels surface at the next synchronizing call). */
#define NLC_LAUNCHED(what)                                             \
    do {                                                               \
        cudaError_t e_ = cudaGetLastError();                           \
        if (e_ != cudaSuccess) return nlc_cuda_err(e_, what);          \
    } while (0)

/* ---- devices and handles (created lazily, one per device) ------------------------- */
enum { NLC_MAX_DEVICES = 64 };
int nlc_set_device(int dev);                 /* 0 or -1 */
cublasHandle_t nlc_cublas(int dev);          /* NULL with an error */
cudnnHandle_t nlc_cudnn(int dev);            /* NULL with an error */
int nlc_sm_count(int dev);                   /* streaming multiprocessors (>= 1) */
bool nlc_allow_tf32(void);                   /* NNLUA_ALLOW_TF32=1 */

/* ---- the caching allocator (device.cu) -------------------------------------------- */
void *nlc_alloc(size_t bytes, int dev);      /* NULL with an error */
void nlc_free(void *p, size_t bytes, int dev);

/* A device buffer of floats that a node or a call keeps; grows, never shrinks. */
struct nlc_buf {
    float *p = nullptr;
    size_t bytes = 0;
    int dev = 0;
    float *get(int64_t n, int device) {      /* NULL with an error */
        size_t want = (size_t)(n > 0 ? n : 1) * sizeof(float);
        if (p && bytes >= want && dev == device) return p;
        release();
        p = (float *)nlc_alloc(want, device);
        if (p) { bytes = want; dev = device; }
        return p;
    }
    void release() {
        if (p) nlc_free(p, bytes, dev);
        p = nullptr;
        bytes = 0;
    }
    ~nlc_buf() { release(); }
};

/* A buffer of at least n ones / zeros on the device (kept for the life of the process). */
const float *nlc_ones(int dev, int64_t n);
const float *nlc_zeros(int dev, int64_t n);

/* ---- launch helpers ------------------------------------------------------------------ */
enum { NLC_THREADS = 256 };
static inline unsigned nlc_blocks(int64_t n) {
    int64_t b = (n + NLC_THREADS - 1) / NLC_THREADS;
    if (b < 1) b = 1;
    if (b > (1 << 20)) b = 1 << 20;          /* grid-stride loops cover the rest */
    return (unsigned)b;
}
#define NLC_LOOP(i, n)                                                             \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (int64_t)(n); \
         i += (int64_t)blockDim.x * gridDim.x)

/* Sum of v over the block (blockDim.x a multiple of 32, at most 1024); the result is
 * valid in thread 0. */
__device__ __forceinline__ float nlc_block_sum(float v) {
    __shared__ float sh[32];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    const int nw = (blockDim.x + 31) >> 5;
    v = (int)threadIdx.x < nw ? sh[threadIdx.x] : 0.0f;
    if (warp == 0)
        for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    __syncthreads();   /* sh may be reused by a following call */
    return v;
}

/* ---- a node's data on its device (NULL with an error) ------------------------------ */
static inline const float *nlc_in(nl_func *f, int i) {
    return (const float *)nl_array_device(f->in[i]->data, NL_READ, f->device_id);
}
static inline float *nlc_out(nl_func *f, int i) {
    return (float *)nl_array_device(f->out[i]->data, NL_WRITE, f->device_id);
}
static inline const float *nlc_out_r(nl_func *f, int i) {
    return (const float *)nl_array_device(f->out[i]->data, NL_READ, f->device_id);
}
static inline const float *nlc_out_grad(nl_func *f, int i) {
    return (const float *)nl_array_device(f->out[i]->grad, NL_READ, f->device_id);
}
static inline float *nlc_in_grad(nl_func *f, int i, bool accum) {
    return (float *)nl_array_device(f->in[i]->grad, accum ? NL_READWRITE : NL_WRITE, f->device_id);
}
/* Declares `type name = expr;` and returns -1 when it is NULL (the error is recorded). */
#define NLC_PTR(type, name, expr) \
    type name = (expr);           \
    if (!name) return -1

/* ---- per-node device state: T is created on first use and deleted with the node.
 * Every implementation of one function (its cuDNN one and the CUDA kernels that one falls
 * back to) uses the same T, so a node's state is always of the type its code expects. ---- */
template <class T> inline void nlc_state_destroy(nl_func *f) {
    delete (T *)f->dev_state;
    f->dev_state = nullptr;
    f->dev_destroy = nullptr;
}
template <class T> inline T *nlc_state(nl_func *f) {
    if (!f->dev_state) {
        T *s = new (std::nothrow) T();
        if (!s) { nl_error("out of memory"); return nullptr; }
        f->dev_state = s;
        f->dev_destroy = &nlc_state_destroy<T>;
    }
    return (T *)f->dev_state;
}

/* ---- registration --------------------------------------------------------------------- */
/* Registers fn on backend unless this libnnlua.so has no function of that name (the CUDA
 * library may be newer or older than the engine's catalogue). 0 or -1. */
int nlc_register(const char *name, const char *backend, nl_forward_fn fwd, nl_backward_fn bwd);
int nlc_register_elementwise(void);
/* The "cuda" implementation of an element-wise function (the cuDNN activations fall back
 * to it). 0, or -1 when there is none. */
int nlc_elementwise_impl(const char *name, nl_forward_fn *fwd, nl_backward_fn *bwd);
int nlc_register_reduce(void);
int nlc_register_layers(void);
int nlc_register_cudnn(void);
int nlc_register_views(void);    /* views.cu: array functions that are strided views */
int nlc_register_losses(void);   /* losses.cu: the element-wise losses of loss_ext.c */
int nlc_register_reductions(void);  /* reduce_ext.cu: max, min, prod, norm, cumsum, cumprod */
int nlc_register_indexing(void);    /* indexing.cu: pad, shift, trilu, one_hot, embed, cce, kl */
int nlc_register_deconv(void);      /* cudnn_deconv.cu: deconvolution, depthwise_convolution */
int nlc_register_norm_ext(void);    /* norm_ext.cu: layer/instance/group/weight normalization, pooling_ext */
int nlc_register_gather(void);      /* gather.cu: gather, gather_nd, scatter_nd, scatter_add */
int nlc_register_sort(void);        /* sort.cu: sort */
int nlc_register_interpolate(void); /* interpolate.cu: interpolate */
int nlc_register_validation(void);  /* validation.cu: top_n_error, binary_error, confusion_matrix */
int nlc_register_clip_grad(void);   /* clip_grad.cu: clip_grad_by_value, clip_grad_by_norm */
int nlc_register_fused_bn(void);    /* fused_bn.cu: fused_batch_normalization */
int nlc_register_stochastic(void);  /* stochastic.cu: dropout, rand, randint, randn, random_choice/crop/flip/shift/erase */
int nlc_register_recurrent(void);   /* recurrent.cu: rnn, lstm, gru */
int nlc_register_generators(void);  /* generators.cu: arange, linspace, constant, unlink, sink */

/* ---- shared device helpers (reduce.cu) --------------------------------------------- */
/* y (the kept axes of x, in order) = scale * sum of x over the axes marked in red
 * (+ y when accum). x: nd axes of the given sizes. */
int nlc_reduce(int dev, const float *x, int nd, const int64_t *shape, const bool *red, float *y,
               float scale, bool accum);
/* dx (x's shape) = scale * dy broadcast over the axes marked in red (+ dx when accum);
 * dy holds the kept axes in order. */
int nlc_broadcast_back(int dev, const float *dy, int nd, const int64_t *shape, const bool *red,
                       float *dx, float scale, bool accum);
/* y = alpha * x (+ y when accum), n elements */
int nlc_axpby(int dev, const float *x, float *y, int64_t n, float alpha, bool accum);
/* forward y = x (same size): one device-to-device copy (reshape, unlink, clip_grad_by_*) */
int nlc_copy_forward(nl_func *f);
int nlc_fill(int dev, float *p, float v, int64_t n);
/* Softmax kernels shared by the cuda and cudnn implementations (x: (outer, C, inner)). */
int nlc_softmax_forward(int dev, const float *x, float *y, int64_t outer, int64_t C, int64_t inner, bool log);
int nlc_softmax_backward(int dev, const float *y, const float *dy, float *dx, int64_t outer, int64_t C,
                         int64_t inner, bool log, bool accum);

/* ---- gradients -------------------------------------------------------------------------- */
/* Input i's gradient dx, about to be scatter-added into: zeroed unless it accumulates.
 * 0 or -1. */
static inline int nlc_clear_grad(nl_func *f, float *dx, int i, bool accum) {
    return accum ? 0 : nlc_fill(f->device_id, dx, 0.0f, nl_in(f, i)->size);
}

/* ---- the first bad entry a check kernel found: one device word per node, lowered with
 *      atomicMin; all ones = none ---------------------------------------------------------- */
/* buf's word set to "none" (ordered before the kernels that follow). NULL with an error. */
static inline unsigned long long *nlc_flag_arm(nlc_buf &buf, int dev) {
    float *p = buf.get(2, dev);
    if (!p) return nullptr;
    unsigned long long *bad = (unsigned long long *)(void *)p;
    const cudaError_t e = cudaMemsetAsync(bad, 0xff, sizeof *bad);
    if (e != cudaSuccess) {
        nlc_cuda_err(e, "cudaMemsetAsync(flag)");
        return nullptr;
    }
    return bad;
}
/* Waits for the kernels; *key = the recorded key, -1 when none. 0 or -1. */
static inline int nlc_flag_key(const unsigned long long *bad, int64_t *key) {
    unsigned long long h = 0;
    NLC_CUDA(cudaMemcpy(&h, bad, sizeof h, cudaMemcpyDeviceToHost));
    *key = h == ~0ull ? -1 : (int64_t)h;
    return 0;
}

#endif
