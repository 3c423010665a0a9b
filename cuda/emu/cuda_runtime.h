/*
 * cuda/emu/cuda_runtime.h - TEST-ONLY CPU emulation of the parts of the CUDA runtime and
 * language that the backend's files use (make cuda-emu; spec/cuda_spec.lua with
 * NNLUA_CUDA_EMU=1). Never part of a real build: g++ finds this header instead of the
 * toolkit's because cuda/emu comes first on the include path, and cuda/common.cuh and
 * every .cu file of cuda/, device.cu included, are compiled on top of it unchanged (but
 * for device.cu's one #ifdef NNLUA_CUDA_EMU hook, nlc_emu_reused below).
 *
 * Model: a kernel launch (rewritten by cuda/emu/launches.lua into nlc_emu_launch) runs its
 * blocks one after another; the blockDim threads of a block are fibers (ucontext) on one
 * OS thread. A fiber runs until it finishes or reaches __syncthreads (it waits for every
 * live thread of the block) or a warp shuffle (it waits for every live thread of its warp,
 * then they exchange), so barriers and shuffles have their real meaning. One warp at a
 * time runs as far as it can (through its own shuffles) before the next moves, the
 * lowest warp and lane first in even blocks and the highest first in odd ones, so code
 * that reads another thread's shared-memory write without a barrier goes wrong in one of
 * the two orders.
 * Atomics are plain read-modify-writes: only one fiber runs at a time and none is
 * preempted inside one (so, unlike a GPU, a plain += where threads collide goes unseen).
 * __shared__ variables are function statics (one copy, shared by the block's fibers,
 * reused by the next block). A bad launch configuration (no blocks,
 * 0 or more than 1024 threads, more than 2^31-1 blocks) is reported by cudaGetLastError.
 *
 * The runtime API (cuda/emu/emu_device.cpp) emulates devices whose memory is host memory:
 * cudaMalloc hands out blocks poisoned with NaN bytes and counts them against the device's
 * size, cudaMemcpy/cudaMemset check that the device side lies inside a live cudaMalloc
 * block, and device.cu's caching allocator, init checks and device ops run over it.
 * Environment (each read once, except the memory size, read at every cudaMalloc and
 * cudaMemGetInfo so a test can change it with setenv):
 *   NNLUA_CUDA_EMU_DEVICES   devices (default 1; 0: cudaGetDeviceCount reports none)
 *   NNLUA_CUDA_EMU_MEM_MB    memory of each device in MiB, fractions allowed (default
 *                            16384); cudaMalloc past it fails with cudaErrorMemoryAllocation
 *   NNLUA_CUDA_EMU_DRIVER    the driver's CUDA version, 1000*major + 10*minor (default the
 *                            runtime's, 12080; 0: no driver; below 12080: too old)
 *   NNLUA_CUDA_EMU_CC        compute capability "M.m" (default 9.0; below 8.0 the build
 *                            has no kernel image for it: cudaFuncGetAttributes fails)
 *   NNLUA_CUDA_EMU_SMS       multiprocessors per device (default 132)
 */
#ifndef NNLUA_CUDA_EMU_RUNTIME_H
#define NNLUA_CUDA_EMU_RUNTIME_H
/* Marks the emulation build for the one hook in cuda/device.cu (nlc_emu_reused). */
#define NNLUA_CUDA_EMU 1

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <cmath>

/* ---- qualifiers ------------------------------------------------------------------------- */
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __shared__ static
#define __constant__ static
#define __launch_bounds__(...)

/* ---- the thread's coordinates (set by the scheduler before it resumes a fiber) ---------- */
struct nlc_emu_dim3 {
    unsigned x, y, z;
};
extern nlc_emu_dim3 threadIdx, blockIdx, blockDim, gridDim;
enum { warpSize = 32 };

/* ---- launches, barriers, shuffles (cuda/emu/emu_device.cpp) ------------------------------ */
void nlc_emu_run(long long grid, long long block, void (*call)(const void *), const void *fn);
void nlc_emu_sync(void);                         /* __syncthreads */
int nlc_emu_shfl_begin(void);                    /* counts an exchange; returns its slot parity */
void *nlc_emu_shfl_slot(int parity, int tid);    /* thread tid's slot (tid -1: this thread's) */
void nlc_emu_shfl_wait(void);                    /* waits for the live threads of the warp */
int nlc_emu_shfl_lane_ok(int src_tid);           /* thread src_tid took part in this exchange */

/* name<<<grid, block>>>(args); is rewritten to nlc_emu_launch(grid, block, [&] { name(args); }); */
template <class F> inline void nlc_emu_launch(long long grid, long long block, const F &fn) {
    nlc_emu_run(grid, block, [](const void *p) { (*(const F *)p)(); }, &fn);
}

static inline void __syncthreads(void) { nlc_emu_sync(); }
static inline void __syncwarp(unsigned = 0xffffffffu) {}
static inline void __threadfence(void) {}

template <class T> inline T nlc_emu_shfl(T v, int src_tid) {
    static_assert(sizeof(T) <= 16, "shuffle of a value wider than 16 bytes");
    const int par = nlc_emu_shfl_begin();
    memcpy(nlc_emu_shfl_slot(par, -1), &v, sizeof v);
    nlc_emu_shfl_wait();
    if (src_tid < 0 || !nlc_emu_shfl_lane_ok(src_tid)) return v;
    T r;
    memcpy(&r, nlc_emu_shfl_slot(par, src_tid), sizeof r);
    return r;
}
/* lanes outside the width-wide segment (or past the block) keep their own value */
template <class T> inline T __shfl_down_sync(unsigned, T v, unsigned d, int width = 32) {
    const int tid = (int)threadIdx.x, lane = tid & (width - 1);
    return nlc_emu_shfl(v, lane + (int)d < width ? tid + (int)d : -1);
}
template <class T> inline T __shfl_up_sync(unsigned, T v, unsigned d, int width = 32) {
    const int tid = (int)threadIdx.x, lane = tid & (width - 1);
    return nlc_emu_shfl(v, lane - (int)d >= 0 ? tid - (int)d : -1);
}
template <class T> inline T __shfl_xor_sync(unsigned, T v, int m, int width = 32) {
    const int tid = (int)threadIdx.x, lane = tid & (width - 1);
    return nlc_emu_shfl(v, (lane ^ m) < width ? tid - lane + (lane ^ m) : -1);
}
template <class T> inline T __shfl_sync(unsigned, T v, int src, int width = 32) {
    const int tid = (int)threadIdx.x, lane = tid & (width - 1);
    return nlc_emu_shfl(v, tid - lane + (src & (width - 1)));
}

/* ---- atomics: one fiber runs at a time, so plain read-modify-writes are atomic ---------- */
template <class T> inline T atomicAdd(T *p, T v) { T o = *p; *p = o + v; return o; }
template <class T> inline T atomicSub(T *p, T v) { T o = *p; *p = o - v; return o; }
template <class T> inline T atomicMin(T *p, T v) { T o = *p; if (v < o) *p = v; return o; }
template <class T> inline T atomicMax(T *p, T v) { T o = *p; if (v > o) *p = v; return o; }
template <class T> inline T atomicExch(T *p, T v) { T o = *p; *p = v; return o; }
template <class T> inline T atomicCAS(T *p, T cmp, T v) { T o = *p; if (o == cmp) *p = v; return o; }
template <class T> inline T atomicOr(T *p, T v) { T o = *p; *p = o | v; return o; }
template <class T> inline T atomicAnd(T *p, T v) { T o = *p; *p = o & v; return o; }

/* ---- intrinsics: round-to-nearest IEEE operations (host float math is already that;
 * the library is built with -ffp-contract=off so nothing is fused behind our back) ------ */
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __frcp_rn(float a) { return 1.0f / a; }
static inline float __fsqrt_rn(float a) { return sqrtf(a); }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
static inline double __dadd_rn(double a, double b) { return a + b; }
static inline double __dsub_rn(double a, double b) { return a - b; }
static inline double __dmul_rn(double a, double b) { return a * b; }
static inline double __ddiv_rn(double a, double b) { return a / b; }
static inline double __dsqrt_rn(double a) { return sqrt(a); }
static inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }
static inline float __fdividef(float a, float b) { return a / b; }
static inline float rsqrtf(float a) { return 1.0f / sqrtf(a); }
static inline double rsqrt(double a) { return 1.0 / sqrt(a); }
static inline float __saturatef(float a) { return a < 0.0f ? 0.0f : (a > 1.0f ? 1.0f : a); }
template <class T> inline T __ldg(const T *p) { return *p; }

/* ---- runtime API (cuda/emu/emu_device.cpp) -------------------------------------------------- */
typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInitializationError = 3,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInsufficientDriver = 35,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
    cudaErrorNoKernelImageForDevice = 209,
} cudaError_t;
typedef enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
} cudaMemcpyKind;
typedef enum cudaDeviceAttr {
    cudaDevAttrMaxThreadsPerBlock = 1,
    cudaDevAttrWarpSize = 10,
    cudaDevAttrMultiProcessorCount = 16,
    cudaDevAttrComputeCapabilityMajor = 75,
    cudaDevAttrComputeCapabilityMinor = 76,
} cudaDeviceAttr;
typedef struct nlc_emu_stream *cudaStream_t;
struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    int major, minor;
    int multiProcessorCount;
    int warpSize;
    int maxThreadsPerBlock;
};
struct cudaFuncAttributes {
    int maxThreadsPerBlock;
    int numRegs;
    int ptxVersion, binaryVersion;
};

cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
const char *cudaGetErrorString(cudaError_t e);
const char *cudaGetErrorName(cudaError_t e);
/* driver, devices */
cudaError_t cudaDriverGetVersion(int *v);
cudaError_t cudaRuntimeGetVersion(int *v);
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int dev);
cudaError_t cudaGetDevice(int *dev);
cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr attr, int dev);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int dev);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t nlc_emu_func_attributes(cudaFuncAttributes *attr);
template <class T> inline cudaError_t cudaFuncGetAttributes(cudaFuncAttributes *attr, T *) {
    return nlc_emu_func_attributes(attr);
}
/* device memory (host memory, counted per device) */
cudaError_t cudaMalloc(void **p, size_t bytes);
template <class T> inline cudaError_t cudaMalloc(T **p, size_t bytes) { return cudaMalloc((void **)(void *)p, bytes); }
cudaError_t cudaFree(void *p);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s = 0);
cudaError_t cudaMemset(void *p, int v, size_t bytes);
cudaError_t cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t s = 0);
/* device.cu's caching allocator hands block p (bytes long) out again: poisoned with NaN
 * bytes as a new one is, so a kernel that reads what nobody wrote still shows */
void nlc_emu_reused(void *p, size_t bytes);
/* pinned host memory and events (a pinned block an asynchronous copy reads is read-only
 * until something ordered after the copy is waited for) */
typedef struct nlc_emu_event *cudaEvent_t;
enum { cudaEventDefault = 0, cudaEventBlockingSync = 1, cudaEventDisableTiming = 2 };
cudaError_t cudaMallocHost(void **p, size_t bytes);
cudaError_t cudaFreeHost(void *p);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = 0);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventDestroy(cudaEvent_t e);

#endif
