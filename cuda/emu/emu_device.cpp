/*
 * cuda/emu/emu_device.cpp - TEST-ONLY CPU emulation of the CUDA runtime under the backend
 * (make cuda-emu -> build/libnnlua_cuda_emu.so; spec/cuda_spec.lua with NNLUA_CUDA_EMU=1):
 * the scheduler that runs kernel launches (blocks one after another, each block's threads
 * as fibers that stop at __syncthreads and warp shuffles; see cuda_runtime.h) and the
 * runtime API calls the backend makes -- driver and device queries, device memory
 * (cudaMalloc on host memory, poisoned with NaN bytes, counted against each device's size),
 * copies and memsets that check their device side, pinned memory, events. cuda/device.cu
 * itself (init, the caching allocator, the device ops, registration) is compiled on top
 * of it (unchanged but for one hook), as is every other .cu file of cuda/; cuBLAS and
 * cuDNN are emulated in cublas_emu.cpp and cudnn_emu*.cpp. The environment variables
 * that shape the emulated devices are listed in cuda_runtime.h.
 *
 * Test hooks (extern "C"): nl_cuda_emu_launches() counts the kernel launches run,
 * nl_cuda_emu_cuda_mallocs(dev) the cudaMalloc calls that succeeded on a device and
 * nl_cuda_emu_device_bytes(dev) the bytes its live cudaMalloc blocks hold;
 * nl_cuda_emu_cudnn_calls() (cudnn_emu.cpp) the cuDNN calls that computed something.
 */
#include "cuda_runtime.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>
#include <map>
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


/* ---- the emulated devices ------------------------------------------------------------------- */

namespace {

const int RUNTIME_VERSION = 12080;          /* CUDA 12.8 */

long env_long(const char *name, long def, long lo, long hi) {
    const char *s = getenv(name);
    if (!s || !s[0]) return def;
    char *end = nullptr;
    const long v = strtol(s, &end, 10);
    if (*end || v < lo || v > hi) {
        fprintf(stderr, "nnlua cuda-emu: %s=%s is not a number in %ld..%ld; using %ld\n", name, s, lo, hi, def);
        return def;
    }
    return v;
}

struct config {
    int devices, driver, cc_major, cc_minor, sms;
};
const config &cfg() {
    static config c = [] {
        config k;
        k.devices = (int)env_long("NNLUA_CUDA_EMU_DEVICES", 1, 0, 256);
        k.driver = (int)env_long("NNLUA_CUDA_EMU_DRIVER", RUNTIME_VERSION, 0, 99999);
        k.sms = (int)env_long("NNLUA_CUDA_EMU_SMS", 132, 1, 100000);
        k.cc_major = 9;
        k.cc_minor = 0;
        const char *s = getenv("NNLUA_CUDA_EMU_CC");
        if (s && s[0] && sscanf(s, "%d.%d", &k.cc_major, &k.cc_minor) != 2) {
            fprintf(stderr, "nnlua cuda-emu: NNLUA_CUDA_EMU_CC=%s is not M.m; using 9.0\n", s);
            k.cc_major = 9;
            k.cc_minor = 0;
        }
        return k;
    }();
    return c;
}

/* Each device's memory in bytes: read at every call, so a test can shrink it with setenv. */
size_t mem_limit() {
    const char *s = getenv("NNLUA_CUDA_EMU_MEM_MB");
    if (!s || !s[0]) return (size_t)16384 << 20;
    char *end = nullptr;
    const double mb = strtod(s, &end);
    if (*end || !(mb >= 0.0 && mb <= 1e9)) {
        fprintf(stderr, "nnlua cuda-emu: NNLUA_CUDA_EMU_MEM_MB=%s is not a size in MiB; using 16384\n", s);
        return (size_t)16384 << 20;
    }
    return (size_t)(mb * 1048576.0);
}

struct device_state {
    size_t used = 0;                        /* bytes in live cudaMalloc blocks */
    long long mallocs = 0;                  /* cudaMalloc calls that succeeded */
};
std::vector<device_state> g_dev;
int g_current = 0;

struct block {
    size_t bytes;
    int dev;
};
std::map<uintptr_t, block> g_blocks;         /* live cudaMalloc blocks by address */

cudaError_t fail(cudaError_t e) { return g_last = e; }

/* what every call that needs a device checks first (the runtime's answer without one) */
cudaError_t need_device() {
    const config &c = cfg();
    if (c.driver == 0 || c.driver < RUNTIME_VERSION) return cudaErrorInsufficientDriver;
    if (c.devices == 0) return cudaErrorNoDevice;
    if (g_dev.empty()) g_dev.resize((size_t)c.devices);
    return cudaSuccess;
}
bool valid(int dev) { return dev >= 0 && dev < cfg().devices; }

/* [p, p + bytes) lies inside one live cudaMalloc block */
bool device_range(const void *p, size_t bytes) {
    if (!p) return false;
    const uintptr_t a = (uintptr_t)p;
    auto it = g_blocks.upper_bound(a);
    if (it == g_blocks.begin()) return false;
    --it;
    return a - it->first <= it->second.bytes && bytes <= it->second.bytes - (a - it->first);
}

}  // namespace

/* ---- runtime API: errors, driver, devices -------------------------------------------------- */

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
    case cudaErrorInitializationError: return "cudaErrorInitializationError";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorNoKernelImageForDevice: return "cudaErrorNoKernelImageForDevice";
    }
    return "cudaErrorUnknown";
}
const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInitializationError: return "initialization error";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorNoKernelImageForDevice: return "no kernel image is available for execution on the device";
    }
    return "unknown error";
}

cudaError_t cudaDriverGetVersion(int *v) {
    if (!v) return fail(cudaErrorInvalidValue);
    *v = cfg().driver;                       /* 0 without a driver, as the runtime answers */
    return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int *v) {
    if (!v) return fail(cudaErrorInvalidValue);
    *v = RUNTIME_VERSION;
    return cudaSuccess;
}
cudaError_t cudaGetDeviceCount(int *n) {
    if (!n) return fail(cudaErrorInvalidValue);
    *n = 0;
    if (cudaError_t e = need_device()) return fail(e);
    *n = cfg().devices;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int dev) {
    if (cudaError_t e = need_device()) return fail(e);
    if (!valid(dev)) return fail(cudaErrorInvalidDevice);
    g_current = dev;
    return cudaSuccess;
}
cudaError_t cudaGetDevice(int *dev) {
    if (!dev) return fail(cudaErrorInvalidValue);
    if (cudaError_t e = need_device()) return fail(e);
    *dev = g_current;
    return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr attr, int dev) {
    if (!v) return fail(cudaErrorInvalidValue);
    if (cudaError_t e = need_device()) return fail(e);
    if (!valid(dev)) return fail(cudaErrorInvalidDevice);
    switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock: *v = 1024; return cudaSuccess;
    case cudaDevAttrWarpSize: *v = 32; return cudaSuccess;
    case cudaDevAttrMultiProcessorCount: *v = cfg().sms; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMajor: *v = cfg().cc_major; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor: *v = cfg().cc_minor; return cudaSuccess;
    }
    return fail(cudaErrorInvalidValue);
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int dev) {
    if (!prop) return fail(cudaErrorInvalidValue);
    if (cudaError_t e = need_device()) return fail(e);
    if (!valid(dev)) return fail(cudaErrorInvalidDevice);
    memset(prop, 0, sizeof *prop);
    snprintf(prop->name, sizeof prop->name, "nnlua CPU emulation of a CUDA device");
    prop->totalGlobalMem = mem_limit();
    prop->major = cfg().cc_major;
    prop->minor = cfg().cc_minor;
    prop->multiProcessorCount = cfg().sms;
    prop->warpSize = 32;
    prop->maxThreadsPerBlock = 1024;
    return cudaSuccess;
}
/* A build for sm_80 and up (with sm_90 PTX) has no image for compute capability < 8.0. */
cudaError_t nlc_emu_func_attributes(cudaFuncAttributes *attr) {
    if (!attr) return fail(cudaErrorInvalidValue);
    if (cudaError_t e = need_device()) return fail(e);
    if (cfg().cc_major < 8) return fail(cudaErrorNoKernelImageForDevice);
    memset(attr, 0, sizeof *attr);
    attr->maxThreadsPerBlock = 1024;
    attr->ptxVersion = attr->binaryVersion = cfg().cc_major * 10 + cfg().cc_minor;
    return cudaSuccess;
}

/* ---- runtime API: device memory -------------------------------------------------------------- */

cudaError_t cudaMalloc(void **p, size_t bytes) {
    if (!p) return fail(cudaErrorInvalidValue);
    *p = nullptr;
    if (cudaError_t e = need_device()) return fail(e);
    if (bytes == 0) return cudaSuccess;      /* NULL, as the runtime answers */
    device_state &d = g_dev[(size_t)g_current];
    const size_t limit = mem_limit();
    if (bytes > limit || d.used > limit - bytes) return fail(cudaErrorMemoryAllocation);
    void *q = malloc(bytes);
    if (!q) return fail(cudaErrorMemoryAllocation);
    memset(q, 0xff, bytes);                  /* NaN floats, -1 integers: unwritten data shows */
    g_blocks[(uintptr_t)q] = {bytes, g_current};
    d.used += bytes;
    d.mallocs++;
    *p = q;
    return cudaSuccess;
}
cudaError_t cudaFree(void *p) {
    if (cudaError_t e = need_device()) return fail(e);
    if (!p) return cudaSuccess;              /* cudaFree(NULL) creates the context */
    auto it = g_blocks.find((uintptr_t)p);
    if (it == g_blocks.end()) return fail(cudaErrorInvalidValue);
    g_dev[(size_t)it->second.dev].used -= it->second.bytes;
    g_blocks.erase(it);
    free(p);
    return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total_b) {
    if (!free_b || !total_b) return fail(cudaErrorInvalidValue);
    if (cudaError_t e = need_device()) return fail(e);
    const size_t used = g_dev[(size_t)g_current].used;
    *total_b = mem_limit();
    *free_b = used < *total_b ? *total_b - used : 0;
    return cudaSuccess;
}
void nlc_emu_reused(void *p, size_t bytes) {
    if (!device_range(p, bytes)) {
        fprintf(stderr, "nnlua cuda-emu: the caching allocator reuses %p (%zu bytes), not a live cudaMalloc block\n",
                p, bytes);
        abort();
    }
    memset(p, 0xff, bytes);
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
/* the device side of a copy of that kind lies in live cudaMalloc blocks */
cudaError_t check_copy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    if (cudaError_t e = need_device()) return fail(e);
    if (!bytes) return cudaSuccess;
    if (!dst || !src || (int)kind < 0 || (int)kind > cudaMemcpyDefault) return fail(cudaErrorInvalidValue);
    const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if ((dst_dev && !device_range(dst, bytes)) || (src_dev && !device_range(src, bytes)))
        return fail(cudaErrorInvalidValue);
    return cudaSuccess;
}
}  // namespace
struct nlc_emu_event { long long seq; };
cudaError_t cudaMallocHost(void **p, size_t bytes) {
    if (!p) return fail(cudaErrorInvalidValue);
    *p = nullptr;
    if (cudaError_t e = need_device()) return fail(e);
    const size_t page = (size_t)sysconf(_SC_PAGESIZE), n = ((bytes ? bytes : 1) + page - 1) / page * page;
    void *q = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (q == MAP_FAILED) return fail(cudaErrorMemoryAllocation);
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
    return fail(cudaErrorInvalidValue);
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned) {
    if (!e) return fail(cudaErrorInvalidValue);
    *e = new nlc_emu_event{0};
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
    if (!e) return fail(cudaErrorInvalidValue);
    e->seq = g_copy_seq;
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
    if (!e) return fail(cudaErrorInvalidValue);
    pinned_release(e->seq);
    return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
    delete e;
    return cudaSuccess;
}
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    if (cudaError_t e = check_copy(dst, src, bytes, kind)) return e;
    pinned_release(g_copy_seq);          /* synchronous: everything before it is done */
    if (bytes) memmove(dst, src, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
    if (cudaError_t e = check_copy(dst, src, bytes, kind)) return e;
    if (bytes) memmove(dst, src, bytes);
    for (pinned_block &b : g_pinned)
        if (bytes && (const char *)src >= (const char *)b.p && (const char *)src < (const char *)b.p + b.bytes) {
            b.seq = ++g_copy_seq;
            mprotect(b.p, b.bytes, PROT_READ);
        }
    return cudaSuccess;
}
cudaError_t cudaMemset(void *p, int v, size_t bytes) {
    if (cudaError_t e = need_device()) return fail(e);
    if (bytes && !device_range(p, bytes)) return fail(cudaErrorInvalidValue);
    if (bytes) memset(p, v, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t) { return cudaMemset(p, v, bytes); }
cudaError_t cudaDeviceSynchronize(void) {
    if (cudaError_t e = need_device()) return fail(e);
    pinned_release(g_copy_seq);
    return cudaSuccess;
}

/* ---- test hooks ---------------------------------------------------------------------------- */

extern "C" {
long long nl_cuda_emu_launches(void) { return g_launches; }
long long nl_cuda_emu_cuda_mallocs(int dev) {
    return dev >= 0 && (size_t)dev < g_dev.size() ? g_dev[(size_t)dev].mallocs : 0;
}
long long nl_cuda_emu_device_bytes(int dev) {
    return dev >= 0 && (size_t)dev < g_dev.size() ? (long long)g_dev[(size_t)dev].used : 0;
}
}
