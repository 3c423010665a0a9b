/*
 * device.cu - the CUDA backend's device layer: initialization (driver and device checks),
 * the nl_device_ops table the engine's synced arrays use (alloc/free/copy/fill), the
 * caching allocator, lazily created cuBLAS/cuDNN handles per device, and the conversion
 * of every CUDA/cuBLAS/cuDNN status into an nl_error message.
 *
 * Caching allocator: requests are rounded up to a size class (512 bytes, then four
 * classes per power of two, so at most 25% is wasted) and freed blocks go onto a free
 * list per (device, size class); the next request of that class takes one back without
 * calling cudaMalloc, so a static graph stops allocating after its first step. When
 * cudaMalloc runs out of memory, every cached block of that device is released and the
 * allocation is tried once more; if that fails too the error reads
 * "CUDA out of memory allocating N bytes on device D (...)".
 */
#include "common.cuh"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unordered_map>
#include <vector>

#ifndef NLC_ARCH_STR
#define NLC_ARCH_STR "sm_80"
#endif

/* ---- errors ----------------------------------------------------------------------------- */

int nlc_cuda_err(cudaError_t e, const char *what) {
    if (e == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        return nl_error("CUDA out of memory in %s", what);
    }
    return nl_error("CUDA error in %s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
}

static const char *cublas_status_name(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED (cuBLAS could not start)";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED (out of device memory)";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH (the device lacks a needed feature)";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED (a kernel failed)";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "unknown cuBLAS status";
    }
}

int nlc_cublas_err(cublasStatus_t s, const char *what) {
    return nl_error("cuBLAS error in %s: %s (%d)", what, cublas_status_name(s), (int)s);
}

int nlc_cudnn_err(cudnnStatus_t s, const char *what) {
    if (s == CUDNN_STATUS_NOT_SUPPORTED)
        return nl_error("cuDNN does not support this configuration: %s returned %s", what,
                        cudnnGetErrorString(s));
    if (s == CUDNN_STATUS_ALLOC_FAILED)
        return nl_error("cuDNN error in %s: %s (out of device memory)", what, cudnnGetErrorString(s));
    return nl_error("cuDNN error in %s: %s (%d)", what, cudnnGetErrorString(s), (int)s);
}

/* ---- devices ----------------------------------------------------------------------------- */

static int g_init = 0;               /* 0 not tried, 1 ready, -1 failed (g_init_msg says why) */
static char g_init_msg[512];
static int g_count = 0;
static int g_current = -1;
static int g_sms[NLC_MAX_DEVICES];
static cublasHandle_t g_cublas[NLC_MAX_DEVICES];
static cudnnHandle_t g_cudnn[NLC_MAX_DEVICES];

static bool valid_device(int dev) {
    if (dev < 0 || dev >= g_count || dev >= NLC_MAX_DEVICES) {
        nl_error("device_id %d is out of range: %d CUDA device%s (device_id 0..%d)", dev, g_count,
                 g_count == 1 ? "" : "s", g_count - 1);
        return false;
    }
    return true;
}

int nlc_set_device(int dev) {
    if (dev == g_current) return 0;
    if (!valid_device(dev)) return -1;
    cudaError_t e = cudaSetDevice(dev);
    if (e != cudaSuccess) {
        char what[64];
        snprintf(what, sizeof what, "cudaSetDevice(%d)", dev);
        return nlc_cuda_err(e, what);
    }
    g_current = dev;
    return 0;
}

int nlc_sm_count(int dev) {
    if (dev < 0 || dev >= NLC_MAX_DEVICES) return 1;
    if (!g_sms[dev]) {
        int n = 0;
        if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || n < 1) {
            cudaGetLastError();
            n = 1;
        }
        g_sms[dev] = n;
    }
    return g_sms[dev];
}

bool nlc_allow_tf32(void) {
    static int v = -1;
    if (v < 0) {
        const char *s = getenv("NNLUA_ALLOW_TF32");
        v = (s && s[0] && strcmp(s, "0") != 0) ? 1 : 0;
    }
    return v == 1;
}

cublasHandle_t nlc_cublas(int dev) {
    if (nlc_set_device(dev)) return nullptr;
    if (!g_cublas[dev]) {
        cublasHandle_t h;
        cublasStatus_t s = cublasCreate(&h);
        if (s != CUBLAS_STATUS_SUCCESS) { nlc_cublas_err(s, "cublasCreate"); return nullptr; }
        /* FP32 math unless TF32 is allowed explicitly (NNabla's default too). */
        cublasSetMathMode(h, nlc_allow_tf32() ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH);
        g_cublas[dev] = h;
    }
    return g_cublas[dev];
}

cudnnHandle_t nlc_cudnn(int dev) {
    if (nlc_set_device(dev)) return nullptr;
    if (!g_cudnn[dev]) {
        cudnnHandle_t h;
        cudnnStatus_t s = cudnnCreate(&h);
        if (s != CUDNN_STATUS_SUCCESS) { nlc_cudnn_err(s, "cudnnCreate"); return nullptr; }
        g_cudnn[dev] = h;
    }
    return g_cudnn[dev];
}

/* ---- the caching allocator ------------------------------------------------------------- */

struct dev_cache {
    std::unordered_map<size_t, std::vector<void *>> free_lists;   /* size class -> blocks */
    int64_t in_use = 0, cached = 0, peak = 0, mallocs = 0;
};
static dev_cache *g_cache[NLC_MAX_DEVICES];

static size_t size_class(size_t bytes) {
    if (bytes <= 512) return 512;
    int e = 63 - __builtin_clzll((unsigned long long)(bytes - 1));   /* 2^e < bytes <= 2^(e+1) */
    size_t step = (size_t)1 << (e >= 2 ? e - 2 : 0);
    return (bytes + step - 1) / step * step;
}

static dev_cache *cache_of(int dev) {
    if (!g_cache[dev]) g_cache[dev] = new (std::nothrow) dev_cache();
    return g_cache[dev];
}

static void flush_cache(int dev) {
    dev_cache *c = g_cache[dev];
    if (!c) return;
    for (auto &kv : c->free_lists) {
        for (void *p : kv.second) cudaFree(p);
        kv.second.clear();
    }
    c->free_lists.clear();
    c->cached = 0;
    cudaGetLastError();
}

void *nlc_alloc(size_t bytes, int dev) {
    if (nlc_set_device(dev)) return nullptr;
    dev_cache *c = cache_of(dev);
    if (!c) { nl_error("out of memory"); return nullptr; }
    size_t sz = size_class(bytes ? bytes : 1);
    auto it = c->free_lists.find(sz);
    if (it != c->free_lists.end() && !it->second.empty()) {
        void *p = it->second.back();
        it->second.pop_back();
        c->cached -= (int64_t)sz;
        c->in_use += (int64_t)sz;
        if (c->in_use > c->peak) c->peak = c->in_use;
#ifdef NNLUA_CUDA_EMU
        nlc_emu_reused(p, sz);   /* test-only CPU emulation (cuda/emu): poisoned again, as a new block */
#endif
        return p;
    }
    void *p = nullptr;
    cudaError_t e = cudaMalloc(&p, sz);
    if (e == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        flush_cache(dev);                        /* give the cache back and try once more */
        e = cudaMalloc(&p, sz);
    }
    if (e != cudaSuccess) {
        cudaGetLastError();
        if (e == cudaErrorMemoryAllocation) {
            size_t free_b = 0, total_b = 0;
            cudaMemGetInfo(&free_b, &total_b);
            cudaGetLastError();
            nl_error("CUDA out of memory allocating %zu bytes on device %d (nnlua holds %.1f MiB there; "
                     "%.1f MiB free of %.1f MiB)", bytes, dev, (double)c->in_use / 1048576.0,
                     (double)free_b / 1048576.0, (double)total_b / 1048576.0);
        } else {
            nl_error("CUDA error allocating %zu bytes on device %d: %s (%s)", bytes, dev,
                     cudaGetErrorString(e), cudaGetErrorName(e));
        }
        return nullptr;
    }
    c->mallocs++;
    c->in_use += (int64_t)sz;
    if (c->in_use > c->peak) c->peak = c->in_use;
    return p;
}

void nlc_free(void *p, size_t bytes, int dev) {
    if (!p || dev < 0 || dev >= NLC_MAX_DEVICES) return;
    dev_cache *c = cache_of(dev);
    size_t sz = size_class(bytes ? bytes : 1);
    if (!c) { cudaFree(p); return; }
    c->in_use -= (int64_t)sz;
    c->cached += (int64_t)sz;
    c->free_lists[sz].push_back(p);
}

/* Constant buffers (ones, zeros) per device, grown on demand. */
static nlc_buf g_ones[NLC_MAX_DEVICES], g_zeros[NLC_MAX_DEVICES];
static int64_t g_ones_n[NLC_MAX_DEVICES], g_zeros_n[NLC_MAX_DEVICES];

static const float *const_buf(nlc_buf *b, int64_t *have, int dev, int64_t n, float v) {
    if (dev < 0 || dev >= NLC_MAX_DEVICES) { nl_error("bad device %d", dev); return nullptr; }
    if (n < 1) n = 1;
    if (have[dev] >= n && b[dev].p) return b[dev].p;
    int64_t want = n < 4096 ? 4096 : n;
    float *p = b[dev].get(want, dev);
    if (!p || nlc_fill(dev, p, v, want)) { have[dev] = 0; return nullptr; }
    have[dev] = want;
    return p;
}
const float *nlc_ones(int dev, int64_t n) { return const_buf(g_ones, g_ones_n, dev, n, 1.0f); }
const float *nlc_zeros(int dev, int64_t n) { return const_buf(g_zeros, g_zeros_n, dev, n, 0.0f); }

/* ---- the nl_device_ops table ----------------------------------------------------------- */

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
    k_fill<<<nlc_blocks(n), NLC_THREADS>>>(p, v, n);
    NLC_LAUNCHED("fill");
    return 0;
}

static void *op_alloc(size_t bytes, int dev) { return nlc_alloc(bytes, dev); }
static void op_free(void *p, size_t bytes, int dev) { nlc_free(p, bytes, dev); }

static int op_to_host(void *host, const void *dev_p, size_t bytes, int dev) {
    if (nlc_set_device(dev)) return -1;
    cudaError_t e = cudaMemcpy(host, dev_p, bytes, cudaMemcpyDeviceToHost);
    if (e != cudaSuccess)
        return nl_error("CUDA error copying %zu bytes from device %d to the host: %s (%s; an earlier "
                        "kernel may have failed)", bytes, dev, cudaGetErrorString(e), cudaGetErrorName(e));
    return 0;
}

static int op_to_device(void *dev_p, const void *host, size_t bytes, int dev) {
    if (nlc_set_device(dev)) return -1;
    cudaError_t e = cudaMemcpy(dev_p, host, bytes, cudaMemcpyHostToDevice);
    if (e != cudaSuccess)
        return nl_error("CUDA error copying %zu bytes from the host to device %d: %s (%s; an earlier "
                        "kernel may have failed)", bytes, dev, cudaGetErrorString(e), cudaGetErrorName(e));
    return 0;
}

static int op_fill(void *p, float v, int64_t n, int dev) { return nlc_fill(dev, (float *)p, v, n); }

static const nl_device_ops g_ops = {"cuda", op_alloc, op_free, op_to_host, op_to_device, op_fill};

/* ---- registration ----------------------------------------------------------------------- */

static int g_registered;

int nlc_register(const char *name, const char *backend, nl_forward_fn fwd, nl_backward_fn bwd) {
    if (nl_function_lookup(name) < 0) return 0;     /* not in this engine's catalogue */
    if (nl_register_impl(name, backend, fwd, bwd)) return -1;
    g_registered++;
    return 0;
}

/* ---- the C entry points (declared to LuaJIT by lua/nnlua/cuda.lua) ------------------- */

extern "C" {

int nl_cuda_init(void) {
    if (g_init == 1) return 0;
    if (g_init == -1) return nl_error("%s", g_init_msg);
    int drv = 0, rt = 0;
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    cudaGetLastError();
    if (drv == 0) {
        snprintf(g_init_msg, sizeof g_init_msg,
                 "no CUDA driver: the NVIDIA driver (libcuda.so) is not installed or cannot be loaded");
    } else if (e == cudaErrorInsufficientDriver) {
        snprintf(g_init_msg, sizeof g_init_msg,
                 "no CUDA driver for this build: the driver supports CUDA %d.%d, the runtime needs %d.%d",
                 drv / 1000, drv % 1000 / 10, rt / 1000, rt % 1000 / 10);
    } else if (e == cudaErrorNoDevice || (e == cudaSuccess && n == 0)) {
        snprintf(g_init_msg, sizeof g_init_msg, "no CUDA device: the driver (CUDA %d.%d) found none",
                 drv / 1000, drv % 1000 / 10);
    } else if (e != cudaSuccess) {
        snprintf(g_init_msg, sizeof g_init_msg, "no CUDA device: cudaGetDeviceCount failed: %s (%s)",
                 cudaGetErrorString(e), cudaGetErrorName(e));
    } else {
        g_count = n < NLC_MAX_DEVICES ? n : NLC_MAX_DEVICES;
        nl_set_device_ops(&g_ops);
        g_registered = 0;
        if (nlc_register_elementwise() || nlc_register_reduce() || nlc_register_layers() ||
            nlc_register_views() || nlc_register_losses() || nlc_register_reductions() ||
            nlc_register_indexing() || nlc_register_deconv() || nlc_register_norm_ext() ||
            nlc_register_gather() || nlc_register_sort() || nlc_register_interpolate() ||
            nlc_register_validation() || nlc_register_clip_grad() || nlc_register_fused_bn() ||
            nlc_register_stochastic() ||
            nlc_register_recurrent() || nlc_register_generators() ||
            nlc_register_cudnn()) {
            snprintf(g_init_msg, sizeof g_init_msg, "registering the CUDA implementations failed: %s",
                     nl_last_error());
            nl_set_device_ops(nullptr);
            g_init = -1;
            return nl_error("%s", g_init_msg);
        }
        g_init = 1;
        return 0;
    }
    g_init = -1;
    return nl_error("%s", g_init_msg);
}

int nl_cuda_device_count(void) {
    if (nl_cuda_init()) return -1;
    return g_count;
}

__global__ void k_probe(int *p) { if (p) *p = 1; }

int nl_cuda_check_device(int id) {
    if (nl_cuda_init()) return -1;
    if (!valid_device(id)) return -1;
    if (nlc_set_device(id)) return -1;
    cudaError_t e = cudaFree(nullptr);                 /* creates the context */
    if (e != cudaSuccess) {
        cudaGetLastError();
        return nl_error("CUDA device %d cannot be used: %s (%s)", id, cudaGetErrorString(e), cudaGetErrorName(e));
    }
    cudaFuncAttributes attr;
    e = cudaFuncGetAttributes(&attr, k_probe);
    if (e != cudaSuccess) {
        cudaGetLastError();
        cudaDeviceProp prop;
        int major = 0, minor = 0;
        if (cudaGetDeviceProperties(&prop, id) == cudaSuccess) { major = prop.major; minor = prop.minor; }
        cudaGetLastError();
        return nl_error("CUDA device %d (compute capability %d.%d) cannot run this build's kernels "
                        "(built for %s): %s; rebuild with `make cuda CUDA_ARCH=...`",
                        id, major, minor, NLC_ARCH_STR, cudaGetErrorString(e));
    }
    return 0;
}

const char *nl_cuda_device_name(int id) {
    static char name[300];
    cudaDeviceProp prop;
    if (nl_cuda_init() || !valid_device(id)) return "";
    if (cudaGetDeviceProperties(&prop, id) != cudaSuccess) { cudaGetLastError(); return ""; }
    snprintf(name, sizeof name, "%s (compute capability %d.%d, %.1f GiB)", prop.name, prop.major, prop.minor,
             (double)prop.totalGlobalMem / 1073741824.0);
    return name;
}

const char *nl_cuda_version(void) {
    static char v[200];
    int rt = 0, drv = 0, cublas = 0;
    cudaRuntimeGetVersion(&rt);
    cudaDriverGetVersion(&drv);
    cublasGetProperty(MAJOR_VERSION, &cublas);
    size_t cudnn = cudnnGetVersion();
    snprintf(v, sizeof v, "CUDA runtime %d.%d, driver %d.%d, cuBLAS %d, cuDNN %zu.%zu.%zu (built against %d.%d.%d)",
             rt / 1000, rt % 1000 / 10, drv / 1000, drv % 1000 / 10, cublas, cudnn / 10000, cudnn % 10000 / 100,
             cudnn % 100, CUDNN_MAJOR, CUDNN_MINOR, CUDNN_PATCHLEVEL);
    return v;
}

int nl_cuda_registered_count(void) { return g_init == 1 ? g_registered : 0; }

int nl_cuda_synchronize(int id) {
    if (nl_cuda_init() || nlc_set_device(id)) return -1;
    NLC_CUDA(cudaDeviceSynchronize());
    return 0;
}

int64_t nl_cuda_bytes_in_use(int id) { return (id >= 0 && id < NLC_MAX_DEVICES && g_cache[id]) ? g_cache[id]->in_use : 0; }
int64_t nl_cuda_bytes_cached(int id) { return (id >= 0 && id < NLC_MAX_DEVICES && g_cache[id]) ? g_cache[id]->cached : 0; }
int64_t nl_cuda_bytes_peak(int id) { return (id >= 0 && id < NLC_MAX_DEVICES && g_cache[id]) ? g_cache[id]->peak : 0; }
int64_t nl_cuda_malloc_count(int id) { return (id >= 0 && id < NLC_MAX_DEVICES && g_cache[id]) ? g_cache[id]->mallocs : 0; }

void nl_cuda_free_cached(void) {
    if (g_init != 1) return;
    int cur = g_current;
    for (int d = 0; d < g_count; d++) {
        if (!g_cache[d]) continue;
        if (nlc_set_device(d) == 0) flush_cache(d);
    }
    if (cur >= 0) nlc_set_device(cur);
}

}   /* extern "C" */
