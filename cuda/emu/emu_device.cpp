/*
 * cuda/emu/emu_device.cpp - TEST-ONLY CPU emulation of the CUDA backend (make cuda-emu ->
 * build/libnnlua_cuda_emu.so; spec/cuda_spec.lua with NNLUA_CUDA_EMU=1). It stands in for
 * cuda/device.cu: one emulated device (id 0) whose memory is host memory, the
 * nl_device_ops table over it, the nlc_* helpers of cuda/common.cuh that device.cu
 * defines, the runtime calls of cuda/emu/cuda_runtime.h, and the scheduler that runs
 * kernel launches (blocks one after another, each block's threads as fibers that stop at
 * __syncthreads and warp shuffles; see cuda_runtime.h). The cuBLAS calls that layers.cu
 * makes are emulated (cuda/emu/cublas_emu.cpp; nlc_cublas hands out a dummy handle), and
 * so are the cuDNN calls of cudnn.cu and cudnn_deconv.cu (cuda/emu/cudnn_emu*.cpp;
 * nlc_cudnn creates one emulated handle with cudnnCreate).
 *
 * nl_cuda_emu_init() installs the device ops and registers the implementations of the
 * emulated files, on backend "cuda" and (cudnn.cu, cudnn_deconv.cu) "cudnn", in
 * device.cu's order; nl_cuda_emu_launches() counts the launches run and
 * nl_cuda_emu_cudnn_calls() (cudnn_emu.cpp) the cuDNN calls that computed something.
 * NNLUA_CUDA_EMU_SMS sets the multiprocessor count the reductions plan for (default 132).
 */
#include "common.cuh"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>
#include <vector>

/* ---- the scheduler ------------------------------------------------------------------------ */

nlc_emu_dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace {

enum fstate { F_RUN, F_BAR, F_WARP, F_DONE };
struct fiber {
    ucontext_t ctx;
    char *stack = nullptr;
    fstate state = F_DONE;
    unsigned shfl_n = 0;                /* exchanges done (the slot parity) */
    unsigned char slot[2][16];
};

const size_t STACK = 256 * 1024;
std::vector<fiber *> g_fibers;
ucontext_t g_sched;
int g_cur = -1;                          /* the fiber running, -1 in the scheduler */
void (*g_call)(const void *);
const void *g_fn;
cudaError_t g_last = cudaSuccess;
long long g_launches = 0;

void trampoline() {
    g_call(g_fn);
    g_fibers[g_cur]->state = F_DONE;     /* uc_link returns to the scheduler */
}

void yield(fstate s) {
    if (g_cur < 0) {
        fprintf(stderr, "nnlua cuda-emu: __syncthreads or a warp shuffle outside a kernel\n");
        abort();
    }
    fiber *f = g_fibers[g_cur];
    f->state = s;
    swapcontext(&f->ctx, &g_sched);
}

[[noreturn]] void deadlock(unsigned block, unsigned n) {
    fprintf(stderr, "nnlua cuda-emu: block %u deadlocks: threads wait at different barriers/shuffles:", block);
    for (unsigned t = 0; t < n; t++)
        if (g_fibers[t]->state != F_DONE) fprintf(stderr, " %u:%s", t, g_fibers[t]->state == F_BAR ? "sync" : "shfl");
    fprintf(stderr, "\n");
    abort();
}

void run_block(unsigned b, unsigned n) {
    blockIdx = {b, 0, 0};
    for (unsigned t = 0; t < n; t++) {
        fiber *f = g_fibers[t];
        getcontext(&f->ctx);
        f->ctx.uc_stack.ss_sp = f->stack;
        f->ctx.uc_stack.ss_size = STACK;
        f->ctx.uc_link = &g_sched;
        makecontext(&f->ctx, trampoline, 0);
        f->state = F_RUN;
        f->shfl_n = 0;
    }
    const bool down = (b & 1) != 0;      /* odd blocks: threads and warps in descending order */
    const unsigned nw = (n + 31) / 32;
    for (;;) {
        /* the first warp that can run runs as far as it can on its own (through its
         * shuffles) before any other warp moves: warps race ahead of each other */
        bool ran = false;
        for (unsigned k = 0; k < nw && !ran; k++) {
            const unsigned w = down ? nw - 1 - k : k, lo = w * 32, hi = lo + 32 < n ? lo + 32 : n;
            for (;;) {
                bool any = false, all_warp = true, live = false;
                for (unsigned j = lo; j < hi; j++) {
                    const unsigned t = down ? hi - 1 - (j - lo) : j;
                    fiber *f = g_fibers[t];
                    if (f->state != F_RUN) continue;
                    g_cur = (int)t;
                    threadIdx = {t, 0, 0};
                    swapcontext(&g_sched, &f->ctx);
                    g_cur = -1;
                    any = true;
                }
                for (unsigned t = lo; t < hi; t++) {
                    const fstate s = g_fibers[t]->state;
                    if (s == F_DONE) continue;
                    live = true;
                    if (s != F_WARP) all_warp = false;
                }
                ran = ran || any;
                if (!live || !all_warp) break;
                for (unsigned t = lo; t < hi; t++)
                    if (g_fibers[t]->state == F_WARP) g_fibers[t]->state = F_RUN;
            }
        }
        if (ran) continue;
        /* nobody can run: release the block at __syncthreads, or find the deadlock */
        bool live = false, all_bar = true;
        for (unsigned t = 0; t < n; t++) {
            const fstate s = g_fibers[t]->state;
            if (s == F_DONE) continue;
            live = true;
            if (s != F_BAR) all_bar = false;
        }
        if (!live) return;
        if (!all_bar) deadlock(b, n);
        for (unsigned t = 0; t < n; t++)
            if (g_fibers[t]->state == F_BAR) g_fibers[t]->state = F_RUN;
    }
}

}  // namespace

void nlc_emu_run(long long grid, long long block, void (*call)(const void *), const void *fn) {
    if (grid < 1 || grid > 0x7fffffffLL || block < 1 || block > 1024) {
        g_last = cudaErrorInvalidConfiguration;
        return;
    }
    if (g_cur >= 0) {
        fprintf(stderr, "nnlua cuda-emu: a kernel launched from a kernel\n");
        abort();
    }
    g_launches++;
    while (g_fibers.size() < (size_t)block) {
        fiber *f = new fiber();
        f->stack = (char *)malloc(STACK);
        if (!f->stack) { fprintf(stderr, "nnlua cuda-emu: out of memory\n"); abort(); }
        g_fibers.push_back(f);
    }
    blockDim = {(unsigned)block, 1, 1};
    gridDim = {(unsigned)grid, 1, 1};
    g_call = call;
    g_fn = fn;
    for (long long b = 0; b < grid; b++) run_block((unsigned)b, (unsigned)block);
}

void nlc_emu_sync(void) { yield(F_BAR); }

int nlc_emu_shfl_begin(void) { return (int)(g_fibers[g_cur]->shfl_n++ & 1); }
void *nlc_emu_shfl_slot(int parity, int tid) { return g_fibers[tid < 0 ? g_cur : tid]->slot[parity]; }
void nlc_emu_shfl_wait(void) { yield(F_WARP); }
/* src took part in this exchange: it is at it, or one past it (resumed before us: its
 * next value went to the other slot); a lane that never got here keeps our own value */
int nlc_emu_shfl_lane_ok(int src) {
    if (src < 0 || (unsigned)src >= blockDim.x) return 0;
    const unsigned mine = g_fibers[g_cur]->shfl_n, theirs = g_fibers[src]->shfl_n;
    return theirs == mine || theirs == mine + 1;
}

/* ---- runtime API ----------------------------------------------------------------------------- */

cudaError_t cudaGetLastError(void) {
    cudaError_t e = g_last;
    g_last = cudaSuccess;
    return e;
}
cudaError_t cudaPeekAtLastError(void) { return g_last; }
const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    }
    return "cudaErrorUnknown";
}
const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    }
    return "unknown error";
}
static cudaError_t check_copy(void *dst, const void *src, size_t bytes) {
    if (bytes && (!dst || !src)) return g_last = cudaErrorInvalidValue;
    return cudaSuccess;
}
/* Pinned host memory (cudaMallocHost: whole pages of its own). A pinned block that an
 * asynchronous copy reads is made read-only (mprotect) until something ordered after that
 * copy is waited for -- an event recorded after it, cudaDeviceSynchronize, a synchronous
 * cudaMemcpy, cudaFreeHost -- so host code that refills a staging buffer while its upload
 * may still be in flight on a GPU crashes here instead of passing. */
namespace {
struct pinned_block {
    void *p;
    size_t bytes;
    long long seq;                       /* the copy that reads it, 0 = none in flight */
};
std::vector<pinned_block> g_pinned;
long long g_copy_seq = 0;
void pinned_release(long long upto) {
    for (pinned_block &b : g_pinned)
        if (b.seq && b.seq <= upto) {
            mprotect(b.p, b.bytes, PROT_READ | PROT_WRITE);
            b.seq = 0;
        }
}
}  // namespace
struct nlc_emu_event { long long seq; };
cudaError_t cudaMallocHost(void **p, size_t bytes) {
    if (!p) return g_last = cudaErrorInvalidValue;
    const size_t page = (size_t)sysconf(_SC_PAGESIZE), n = ((bytes ? bytes : 1) + page - 1) / page * page;
    void *q = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (q == MAP_FAILED) { *p = nullptr; return g_last = cudaErrorMemoryAllocation; }
    g_pinned.push_back({q, n, 0});
    *p = q;
    return cudaSuccess;
}
cudaError_t cudaFreeHost(void *p) {
    if (!p) return cudaSuccess;
    for (size_t i = 0; i < g_pinned.size(); i++)
        if (g_pinned[i].p == p) {
            munmap(p, g_pinned[i].bytes);
            g_pinned.erase(g_pinned.begin() + (long)i);
            return cudaSuccess;
        }
    return g_last = cudaErrorInvalidValue;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned) {
    if (!e) return g_last = cudaErrorInvalidValue;
    *e = new nlc_emu_event{0};
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
    if (!e) return g_last = cudaErrorInvalidValue;
    e->seq = g_copy_seq;
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
    if (!e) return g_last = cudaErrorInvalidValue;
    pinned_release(e->seq);
    return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
    delete e;
    return cudaSuccess;
}
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind) {
    if (cudaError_t e = check_copy(dst, src, bytes)) return e;
    pinned_release(g_copy_seq);          /* synchronous: everything before it is done */
    if (bytes) memmove(dst, src, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind, cudaStream_t) {
    if (cudaError_t e = check_copy(dst, src, bytes)) return e;
    if (bytes) memmove(dst, src, bytes);
    for (pinned_block &b : g_pinned)
        if (bytes && (const char *)src >= (const char *)b.p && (const char *)src < (const char *)b.p + b.bytes) {
            b.seq = ++g_copy_seq;
            mprotect(b.p, b.bytes, PROT_READ);
        }
    return cudaSuccess;
}
cudaError_t cudaMemset(void *p, int v, size_t bytes) {
    if (bytes && !p) return g_last = cudaErrorInvalidValue;
    if (bytes) memset(p, v, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t) { return cudaMemset(p, v, bytes); }
cudaError_t cudaDeviceSynchronize(void) {
    pinned_release(g_copy_seq);
    return cudaSuccess;
}
static long long g_in_use = 0, g_mallocs = 0;
/* a 16 GiB device, less what the emulated allocations hold */
cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total_b) {
    if (!free_b || !total_b) return g_last = cudaErrorInvalidValue;
    *total_b = (size_t)16 << 30;
    *free_b = g_in_use < (long long)*total_b ? *total_b - (size_t)g_in_use : 0;
    return cudaSuccess;
}

/* ---- what cuda/device.cu defines ------------------------------------------------------------- */

int nlc_cuda_err(cudaError_t e, const char *what) {
    if (e == cudaErrorMemoryAllocation) return nl_error("CUDA out of memory in %s", what);
    return nl_error("CUDA error in %s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
}
int nlc_cublas_err(cublasStatus_t s, const char *what) {
    return nl_error("cuBLAS error in %s: status %d [emulated]", what, (int)s);
}
int nlc_cudnn_err(cudnnStatus_t s, const char *what) {
    if (s == CUDNN_STATUS_NOT_SUPPORTED)
        return nl_error("cuDNN does not support this configuration: %s returned %s [emulated]", what,
                        cudnnGetErrorString(s));
    return nl_error("cuDNN error in %s: %s (%d) [emulated]", what, cudnnGetErrorString(s), (int)s);
}

static const int EMU_DEVICES = 1;

int nlc_set_device(int dev) {
    if (dev < 0 || dev >= EMU_DEVICES)
        return nl_error("device_id %d is out of range: %d CUDA device (device_id 0..0) [emulated]", dev, EMU_DEVICES);
    return 0;
}
int nlc_sm_count(int) {
    static int n = 0;
    if (!n) {
        const char *s = getenv("NNLUA_CUDA_EMU_SMS");
        n = s && atoi(s) > 0 ? atoi(s) : 132;
    }
    return n;
}
bool nlc_allow_tf32(void) { return false; }
/* the emulated cuBLAS calls only check that the handle is not null */
cublasHandle_t nlc_cublas(int dev) {
    static char dummy;
    if (nlc_set_device(dev)) return nullptr;
    return (cublasHandle_t)(void *)&dummy;
}
cudnnHandle_t nlc_cudnn(int dev) {
    static cudnnHandle_t h = nullptr;
    if (nlc_set_device(dev)) return nullptr;
    if (!h) {
        const cudnnStatus_t s = cudnnCreate(&h);
        if (s != CUDNN_STATUS_SUCCESS) { nlc_cudnn_err(s, "cudnnCreate"); h = nullptr; }
    }
    return h;
}

/* Allocations are poisoned with NaN bytes, so a kernel that reads what nobody wrote shows. */
void *nlc_alloc(size_t bytes, int dev) {
    if (nlc_set_device(dev)) return nullptr;
    const size_t n = bytes ? bytes : 4;
    void *p = malloc(n);
    if (!p) {
        nl_error("CUDA out of memory allocating %zu bytes on device %d [emulated]", bytes, dev);
        return nullptr;
    }
    memset(p, 0xff, n);
    g_in_use += (long long)bytes;
    g_mallocs++;
    return p;
}
void nlc_free(void *p, size_t bytes, int) {
    if (!p) return;
    free(p);
    g_in_use -= (long long)bytes;
}

static nlc_buf g_ones, g_zeros;
static int64_t g_ones_n, g_zeros_n;
static const float *const_buf(nlc_buf *b, int64_t *have, int dev, int64_t n, float v) {
    if (n < 1) n = 1;
    if (*have >= n && b->p) return b->p;
    int64_t want = n < 4096 ? 4096 : n;
    float *p = b->get(want, dev);
    if (!p || nlc_fill(dev, p, v, want)) { *have = 0; return nullptr; }
    *have = want;
    return p;
}
const float *nlc_ones(int dev, int64_t n) { return const_buf(&g_ones, &g_ones_n, dev, n, 1.0f); }
const float *nlc_zeros(int dev, int64_t n) { return const_buf(&g_zeros, &g_zeros_n, dev, n, 0.0f); }

__global__ void k_fill(float *p, float v, int64_t n) {
    NLC_LOOP(i, n) p[i] = v;
}

int nlc_fill(int dev, float *p, float v, int64_t n) {
    if (n <= 0) return 0;
    if (nlc_set_device(dev)) return -1;
    if (v == 0.0f && !signbit(v)) {
        NLC_CUDA(cudaMemsetAsync(p, 0, (size_t)n * sizeof(float)));
        return 0;
    }
    nlc_emu_launch(nlc_blocks(n), NLC_THREADS, [&] { k_fill(p, v, n); });
    NLC_LAUNCHED("fill");
    return 0;
}

static void *op_alloc(size_t bytes, int dev) { return nlc_alloc(bytes, dev); }
static void op_free(void *p, size_t bytes, int dev) { nlc_free(p, bytes, dev); }
static int op_to_host(void *host, const void *dev_p, size_t bytes, int dev) {
    if (nlc_set_device(dev)) return -1;
    NLC_CUDA(cudaMemcpy(host, dev_p, bytes, cudaMemcpyDeviceToHost));
    return 0;
}
static int op_to_device(void *dev_p, const void *host, size_t bytes, int dev) {
    if (nlc_set_device(dev)) return -1;
    NLC_CUDA(cudaMemcpy(dev_p, host, bytes, cudaMemcpyHostToDevice));
    return 0;
}
static int op_fill(void *p, float v, int64_t n, int dev) { return nlc_fill(dev, (float *)p, v, n); }
static const nl_device_ops g_ops = {"cuda", op_alloc, op_free, op_to_host, op_to_device, op_fill};

static int g_registered;
int nlc_register(const char *name, const char *backend, nl_forward_fn fwd, nl_backward_fn bwd) {
    if (nl_function_lookup(name) < 0) return 0;
    if (nl_register_impl(name, backend, fwd, bwd)) return -1;
    g_registered++;
    return 0;
}

/* ---- the emulated files' registrations (the Makefile passes -DNLC_EMU_HAVE_<FILE>) ---- */

extern "C" {

int nl_cuda_emu_init(void) {
    static int done = 0;
    if (done) return done > 0 ? 0 : nl_error("the CUDA emulation failed to initialize earlier");
    done = -1;
    nl_set_device_ops(&g_ops);
    g_registered = 0;
    int rc = 0;
#ifdef NLC_EMU_HAVE_ELEMENTWISE
    rc = rc ? rc : nlc_register_elementwise();
#endif
#ifdef NLC_EMU_HAVE_REDUCE
    rc = rc ? rc : nlc_register_reduce();
#endif
#ifdef NLC_EMU_HAVE_LAYERS
    rc = rc ? rc : nlc_register_layers();
#endif
#ifdef NLC_EMU_HAVE_VIEWS
    rc = rc ? rc : nlc_register_views();
#endif
#ifdef NLC_EMU_HAVE_LOSSES
    rc = rc ? rc : nlc_register_losses();
#endif
#ifdef NLC_EMU_HAVE_REDUCE_EXT
    rc = rc ? rc : nlc_register_reductions();
#endif
#ifdef NLC_EMU_HAVE_INDEXING
    rc = rc ? rc : nlc_register_indexing();
#endif
#ifdef NLC_EMU_HAVE_CUDNN_DECONV
    rc = rc ? rc : nlc_register_deconv();
#endif
#ifdef NLC_EMU_HAVE_NORM_EXT
    rc = rc ? rc : nlc_register_norm_ext();
#endif
#ifdef NLC_EMU_HAVE_GATHER
    rc = rc ? rc : nlc_register_gather();
#endif
#ifdef NLC_EMU_HAVE_SORT
    rc = rc ? rc : nlc_register_sort();
#endif
#ifdef NLC_EMU_HAVE_INTERPOLATE
    rc = rc ? rc : nlc_register_interpolate();
#endif
#ifdef NLC_EMU_HAVE_VALIDATION
    rc = rc ? rc : nlc_register_validation();
#endif
#ifdef NLC_EMU_HAVE_CLIP_GRAD
    rc = rc ? rc : nlc_register_clip_grad();
#endif
#ifdef NLC_EMU_HAVE_FUSED_BN
    rc = rc ? rc : nlc_register_fused_bn();
#endif
#ifdef NLC_EMU_HAVE_STOCHASTIC
    rc = rc ? rc : nlc_register_stochastic();
#endif
#ifdef NLC_EMU_HAVE_RECURRENT
    rc = rc ? rc : nlc_register_recurrent();
#endif
#ifdef NLC_EMU_HAVE_GENERATORS
    rc = rc ? rc : nlc_register_generators();
#endif
#ifdef NLC_EMU_HAVE_CUDNN
    rc = rc ? rc : nlc_register_cudnn();   /* last: its activations fall back to elementwise's */
#endif
    if (rc) return nl_error("registering the emulated CUDA implementations failed: %s", nl_last_error());
    done = 1;
    return 0;
}

int nl_cuda_emu_registered_count(void) { return g_registered; }
long long nl_cuda_emu_launches(void) { return g_launches; }
long long nl_cuda_emu_malloc_count(void) { return g_mallocs; }
long long nl_cuda_emu_bytes_in_use(void) { return g_in_use; }

}
