/*
 * solvers.cu - solver updates and the gradient helpers of lua/nnlua/solvers.lua on the
 * device, with NNabla's update rules (the same as core/solvers). Each entry point takes
 * the engine's synced arrays and works where the data is: the arrays are synced to the
 * device lazily (nl_array_device), so the parameters, gradients and solver states of a
 * network trained on the GPU never travel to the host. The Lua solver calls these when
 * the gradient's current copy is on the device (nl_array_where(grad) & 2), see cuda.lua.
 *
 * Hyper-parameters that depend on the step count (Adam's bias-corrected alpha_t) are
 * computed by the caller in double precision and passed in.
 */
#include "common.cuh"
#include <math.h>

extern "C" {
int nl_cuda_sgd_update(nl_array *w, nl_array *g, float lr);
int nl_cuda_momentum_update(nl_array *w, nl_array *g, nl_array *m, float lr, float momentum);
int nl_cuda_nesterov_update(nl_array *w, nl_array *g, nl_array *m, float lr, float momentum);
int nl_cuda_adagrad_update(nl_array *w, nl_array *g, nl_array *v, float lr, float eps);
int nl_cuda_rmsprop_update(nl_array *w, nl_array *g, nl_array *v, float lr, float decay, float eps);
int nl_cuda_adadelta_update(nl_array *w, nl_array *g, nl_array *e_g, nl_array *e_d, float lr, float decay, float eps);
int nl_cuda_adam_update(nl_array *w, nl_array *g, nl_array *m, nl_array *v, float alpha_t, float beta1, float beta2,
                        float eps, float wd);
int nl_cuda_amsgrad_update(nl_array *w, nl_array *g, nl_array *m, nl_array *v, nl_array *v_hat, float alpha_t,
                           float beta1, float beta2, float eps);
int nl_cuda_adamax_update(nl_array *w, nl_array *g, nl_array *m, nl_array *u, float alpha_t, float beta1,
                          float beta2, float eps);
int nl_cuda_sgdw_update(nl_array *w, nl_array *g, nl_array *m, float lr, float momentum, float wd);
int nl_cuda_weight_decay(nl_array *w, nl_array *g, float decay);
int nl_cuda_axpy(nl_array *y, float alpha, nl_array *x);
int nl_cuda_scale(nl_array *x, float alpha);
double nl_cuda_sum_squares(nl_array *x);
int nl_cuda_has_inf_or_nan(nl_array *x);
int nl_cuda_on_device(const nl_array *a);
}

/* The device for arrays that have never been on one (set by cuda.lua from the context). */
static int g_solver_device = 0;
extern "C" int nl_cuda_set_solver_device(int id) {
    if (id < 0 || id >= NLC_MAX_DEVICES) return nl_error("device_id %d is out of range", id);
    g_solver_device = id;
    return 0;
}

/* The device of the first array that has a device copy (the parameter's or the
 * gradient's: where the network ran), else the default. */
static int solver_device(int n, nl_array *const *arrs) {
    for (int i = 0; i < n; i++)
        if (arrs[i] && nl_array_device_id(arrs[i]) >= 0) return nl_array_device_id(arrs[i]);
    return g_solver_device;
}

/* Device pointers of n arrays of one size (NULL entries are skipped). */
static int dev_ptrs(const char *what, int n, nl_array *const *arrs, const nl_access *modes, float **out) {
    const int dev = solver_device(n, arrs);
    const int64_t size = nl_array_size(arrs[0]);
    for (int i = 1; i < n; i++)
        if (arrs[i] && nl_array_size(arrs[i]) != size)
            return nl_error("%s: parameter has %lld elements, array %d has %lld", what, (long long)size, i + 1,
                            (long long)nl_array_size(arrs[i]));
    for (int i = 0; i < n; i++) {
        out[i] = nullptr;
        if (!arrs[i]) continue;
        out[i] = (float *)nl_array_device(arrs[i], modes[i], dev);
        if (!out[i]) return -1;
    }
    return 0;
}

#define NL_RW NL_READWRITE

__global__ void k_sgd(int64_t n, float *w, const float *g, float lr) {
    NLC_LOOP(i, n) w[i] -= lr * g[i];
}
__global__ void k_momentum(int64_t n, float *w, const float *g, float *m, float lr, float mom) {
    NLC_LOOP(i, n) {
        const float v = mom * m[i] + lr * g[i];
        m[i] = v;
        w[i] -= v;
    }
}
__global__ void k_nesterov(int64_t n, float *w, const float *g, float *m, float lr, float mom) {
    NLC_LOOP(i, n) {
        const float prev = m[i];
        const float v = mom * prev - lr * g[i];
        m[i] = v;
        w[i] += -mom * prev + (1.0f + mom) * v;
    }
}
__global__ void k_adagrad(int64_t n, float *w, const float *g, float *v, float lr, float eps) {
    NLC_LOOP(i, n) {
        const float s = v[i] + g[i] * g[i];
        v[i] = s;
        w[i] -= lr * g[i] / (sqrtf(s) + eps);
    }
}
__global__ void k_rmsprop(int64_t n, float *w, const float *g, float *v, float lr, float decay, float eps) {
    NLC_LOOP(i, n) {
        const float s = decay * v[i] + (1.0f - decay) * g[i] * g[i];
        v[i] = s;
        w[i] -= lr * g[i] / (sqrtf(s) + eps);
    }
}
__global__ void k_adadelta(int64_t n, float *w, const float *g, float *eg, float *ed, float lr, float decay, float eps) {
    NLC_LOOP(i, n) {
        const float e1 = decay * eg[i] + (1.0f - decay) * g[i] * g[i];
        const float d = sqrtf((ed[i] + eps) / (e1 + eps)) * g[i];
        eg[i] = e1;
        ed[i] = decay * ed[i] + (1.0f - decay) * d * d;
        w[i] -= lr * d;
    }
}
/* Adam (wd = 0) and AdamW (wd = eta_t * lambda): w -= alpha_t m / (sqrt(v) + eps) + wd w */
__global__ void k_adam(int64_t n, float *w, const float *g, float *m, float *v, float alpha_t, float b1, float b2,
                       float eps, float wd) {
    NLC_LOOP(i, n) {
        const float mi = b1 * m[i] + (1.0f - b1) * g[i];
        const float vi = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
        m[i] = mi;
        v[i] = vi;
        w[i] = w[i] - alpha_t * mi / (sqrtf(vi) + eps) - wd * w[i];
    }
}
__global__ void k_amsgrad(int64_t n, float *w, const float *g, float *m, float *v, float *vh, float alpha_t, float b1,
                          float b2, float eps) {
    NLC_LOOP(i, n) {
        const float mi = b1 * m[i] + (1.0f - b1) * g[i];
        const float vi = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
        const float h = fmaxf(vh[i], vi);
        m[i] = mi;
        v[i] = vi;
        vh[i] = h;
        w[i] -= alpha_t * mi / (sqrtf(h) + eps);
    }
}
__global__ void k_adamax(int64_t n, float *w, const float *g, float *m, float *u, float alpha_t, float b1, float b2,
                         float eps) {
    NLC_LOOP(i, n) {
        const float mi = b1 * m[i] + (1.0f - b1) * g[i];
        const float ui = fmaxf(b2 * u[i], fabsf(g[i]));
        m[i] = mi;
        u[i] = ui;
        w[i] -= alpha_t * mi / (ui + eps);
    }
}
/* SgdW: m = momentum m + lr g; w = w - m - wd w  (wd = lr / lr_init * lambda) */
__global__ void k_sgdw(int64_t n, float *w, const float *g, float *m, float lr, float mom, float wd) {
    NLC_LOOP(i, n) {
        const float v = mom * m[i] + lr * g[i];
        m[i] = v;
        w[i] = w[i] - v - wd * w[i];
    }
}
__global__ void k_axpy_(int64_t n, float *y, float a, const float *x) {
    NLC_LOOP(i, n) y[i] += a * x[i];
}
__global__ void k_scale_(int64_t n, float *x, float a) {
    NLC_LOOP(i, n) x[i] *= a;
}

#define LAUNCH(what, kernel, ...)                                                   \
    do {                                                                            \
        if (n > 0) {                                                                \
            kernel<<<nlc_blocks(n), NLC_THREADS>>>(n, __VA_ARGS__);                 \
            NLC_LAUNCHED(what);                                                     \
        }                                                                           \
    } while (0)

extern "C" {

int nl_cuda_on_device(const nl_array *a) { return (nl_array_where(a) & 2) != 0; }

int nl_cuda_sgd_update(nl_array *w, nl_array *g, float lr) {
    nl_array *a[2] = {w, g};
    const nl_access md[2] = {NL_RW, NL_READ};
    float *p[2];
    if (dev_ptrs("sgd update", 2, a, md, p)) return -1;
    const int64_t n = nl_array_size(w);
    LAUNCH("sgd update", k_sgd, p[0], p[1], lr);
    return 0;
}

int nl_cuda_momentum_update(nl_array *w, nl_array *g, nl_array *m, float lr, float momentum) {
    nl_array *a[3] = {w, g, m};
    const nl_access md[3] = {NL_RW, NL_READ, NL_RW};
    float *p[3];
    if (dev_ptrs("momentum update", 3, a, md, p)) return -1;
    const int64_t n = nl_array_size(w);
    LAUNCH("momentum update", k_momentum, p[0], p[1], p[2], lr, momentum);
    return 0;
}

int nl_cuda_nesterov_update(nl_array *w, nl_array *g, nl_array *m, float lr, float momentum) {
    nl_array *a[3] = {w, g, m};
    const nl_access md[3] = {NL_RW, NL_READ, NL_RW};
    float *p[3];
    if (dev_ptrs("nesterov update", 3, a, md, p)) return -1;
    const int64_t n = nl_array_size(w);
    LAUNCH("nesterov update", k_nesterov, p[0], p[1], p[2], lr, momentum);
    return 0;
}

int nl_cuda_adagrad_update(nl_array *w, nl_array *g, nl_array *v, float lr, float eps) {
    nl_array *a[3] = {w, g, v};
    const nl_access md[3] = {NL_RW, NL_READ, NL_RW};
    float *p[3];
    if (dev_ptrs("adagrad update", 3, a, md, p)) return -1;
    const int64_t n = nl_array_size(w);
    LAUNCH("adagrad update", k_adagrad, p[0], p[1], p[2], lr, eps);
    return 0;
}

int nl_cuda_rmsprop_update(nl_array *w, nl_array *g, nl_array *v, float lr, float decay, float eps) {
    nl_array *a[3] = {w, g, v};
    const nl_access md[3] = {NL_RW, NL_READ, NL_RW};
    float *p[3];
    if (dev_ptrs("rmsprop update", 3, a, md, p)) return -1;
    const int64_t n = nl_array_size(w);
    LAUNCH("rmsprop update", k_rmsprop, p[0], p[1], p[2], lr, decay, eps);
    return 0;
}

int nl_cuda_adadelta_update(nl_array *w, nl_array *g, nl_array *e_g, nl_array *e_d, float lr, float decay, float eps) {
    nl_array *a[4] = {w, g, e_g, e_d};
    const nl_access md[4] = {NL_RW, NL_READ, NL_RW, NL_RW};
    float *p[4];
    if (dev_ptrs("adadelta update", 4, a, md, p)) return -1;
    const int64_t n = nl_array_size(w);
    LAUNCH("adadelta update", k_adadelta, p[0], p[1], p[2], p[3], lr, decay, eps);
    return 0;
}

int nl_cuda_adam_update(nl_array *w, nl_array *g, nl_array *m, nl_array *v, float alpha_t, float beta1, float beta2,
                        float eps, float wd) {
    nl_array *a[4] = {w, g, m, v};
    const nl_access md[4] = {NL_RW, NL_READ, NL_RW, NL_RW};
    float *p[4];
    if (dev_ptrs("adam update", 4, a, md, p)) return -1;
    const int64_t n = nl_array_size(w);
    LAUNCH("adam update", k_adam, p[0], p[1], p[2], p[3], alpha_t, beta1, beta2, eps, wd);
    return 0;
}

int nl_cuda_amsgrad_update(nl_array *w, nl_array *g, nl_array *m, nl_array *v, nl_array *v_hat, float alpha_t,
                           float beta1, float beta2, float eps) {
    nl_array *a[5] = {w, g, m, v, v_hat};
    const nl_access md[5] = {NL_RW, NL_READ, NL_RW, NL_RW, NL_RW};
    float *p[5];
    if (dev_ptrs("amsgrad update", 5, a, md, p)) return -1;
    const int64_t n = nl_array_size(w);
    LAUNCH("amsgrad update", k_amsgrad, p[0], p[1], p[2], p[3], p[4], alpha_t, beta1, beta2, eps);
    return 0;
}

int nl_cuda_adamax_update(nl_array *w, nl_array *g, nl_array *m, nl_array *u, float alpha_t, float beta1,
                          float beta2, float eps) {
    nl_array *a[4] = {w, g, m, u};
    const nl_access md[4] = {NL_RW, NL_READ, NL_RW, NL_RW};
    float *p[4];
    if (dev_ptrs("adamax update", 4, a, md, p)) return -1;
    const int64_t n = nl_array_size(w);
    LAUNCH("adamax update", k_adamax, p[0], p[1], p[2], p[3], alpha_t, beta1, beta2, eps);
    return 0;
}

int nl_cuda_sgdw_update(nl_array *w, nl_array *g, nl_array *m, float lr, float momentum, float wd) {
    nl_array *a[3] = {w, g, m};
    const nl_access md[3] = {NL_RW, NL_READ, NL_RW};
    float *p[3];
    if (dev_ptrs("sgdw update", 3, a, md, p)) return -1;
    const int64_t n = nl_array_size(w);
    LAUNCH("sgdw update", k_sgdw, p[0], p[1], p[2], lr, momentum, wd);
    return 0;
}

/* g += decay * w */
int nl_cuda_weight_decay(nl_array *w, nl_array *g, float decay) {
    if (decay == 0.0f) return 0;
    return nl_cuda_axpy(g, decay, w);
}

int nl_cuda_axpy(nl_array *y, float alpha, nl_array *x) {
    nl_array *a[2] = {y, x};
    const nl_access md[2] = {NL_RW, NL_READ};
    float *p[2];
    if (dev_ptrs("axpy", 2, a, md, p)) return -1;
    const int64_t n = nl_array_size(y);
    LAUNCH("axpy", k_axpy_, p[0], alpha, p[1]);
    return 0;
}

int nl_cuda_scale(nl_array *x, float alpha) {
    float *p = (float *)nl_array_device(x, NL_READWRITE, solver_device(1, &x));
    if (!p) return -1;
    const int64_t n = nl_array_size(x);
    LAUNCH("scale", k_scale_, p, alpha);
    return 0;
}

}   /* extern "C" */

/* sum of squares (as double) and the count of non-finite values, per block, then summed */
__global__ void k_sumsq_partial(int64_t n, const float *x, float *part) {
    float s = 0.0f, bad = 0.0f;
    NLC_LOOP(i, n) {
        const float v = x[i];
        s += v * v;
        if (!isfinite(v)) bad += 1.0f;
    }
    s = nlc_block_sum(s);
    bad = nlc_block_sum(bad);
    if (threadIdx.x == 0) {
        part[2 * blockIdx.x] = s;
        part[2 * blockIdx.x + 1] = bad;
    }
}

static int sumsq(nl_array *x, double *sum, double *bad) {
    const int dev = solver_device(1, &x);
    const float *p = (const float *)nl_array_device(x, NL_READ, dev);
    if (!p) return -1;
    const int64_t n = nl_array_size(x);
    *sum = 0.0;
    *bad = 0.0;
    if (n == 0) return 0;
    unsigned blocks = nlc_blocks(n);
    if (blocks > 1024) blocks = 1024;
    nlc_buf part;
    NLC_PTR(float *, d, part.get(2 * (int64_t)blocks, dev));
    k_sumsq_partial<<<blocks, NLC_THREADS>>>(n, p, d);
    NLC_LAUNCHED("sum of squares");
    float h[2048];
    NLC_CUDA(cudaMemcpy(h, d, 2 * blocks * sizeof(float), cudaMemcpyDeviceToHost));
    for (unsigned b = 0; b < blocks; b++) {
        *sum += h[2 * b];
        *bad += h[2 * b + 1];
    }
    return 0;
}

extern "C" {

double nl_cuda_sum_squares(nl_array *x) {
    double s, bad;
    if (sumsq(x, &s, &bad)) return NAN;
    return s;
}

int nl_cuda_has_inf_or_nan(nl_array *x) {
    double s, bad;
    if (sumsq(x, &s, &bad)) return -1;
    return bad > 0.0 ? 1 : 0;
}

}   /* extern "C" */
