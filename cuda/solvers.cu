/*
 * solvers.cu - the solver update kernels and gradient helpers of core/solvers and
 * core/src/vecops.c on the device. Every entry point nl_cuda_<name> takes exactly the
 * arguments of the engine's host kernel nl_<name> and follows the same rule (NNabla's,
 * see the comments in core/solvers/): per-element math in float, step-size scalars
 * (bias corrections) from double pow/sqrt rounded to float, tensor norms summed per block
 * and then in double on the host.
 *
 * The arrays are synced to the device lazily (nl_array_device), on the device that
 * already holds the parameter's or the gradient's copy, so a network trained on the GPU
 * keeps its parameters, gradients and solver states there. lua/nnlua/cuda.lua exposes
 * them as cuda.kernels.nl_<name> (the host names), and the Lua solver picks that table
 * instead of the engine's when the gradient's current copy is on a device.
 */
#include "common.cuh"
#include <math.h>


/* The device for arrays that have never been on one (cuda.lua sets it from the context). */
static int g_solver_device = 0;

int nl_cuda_set_solver_device(int id) {
    if (id < 0 || id >= NLC_MAX_DEVICES) return nl_error("device_id %d is out of range", id);
    g_solver_device = id;
    return 0;
}

int nl_cuda_on_device(const nl_array *a) { return (nl_array_where(a) & 2) != 0; }

/* The device of the first array that has a device copy, else the default. */
static int device_of(int n, nl_array *const *arrs) {
    for (int i = 0; i < n; i++)
        if (arrs[i] && nl_array_device_id(arrs[i]) >= 0) return nl_array_device_id(arrs[i]);
    return g_solver_device;
}

enum { MAX_STATES = 4 };

/* The checks of nl_solver_ptrs (core/solvers/sgd.c), then device pointers: w and the
 * states read-write, g read-only. Returns the device, or -1 with a message. */
static int solver_ptrs(const char *who, nl_array *w, nl_array *g, int n_states, nl_array *const *states,
                       float **pw, const float **pg, float **ps) {
    if (!w || !g) return nl_error("%s update: no parameter or gradient array", who);
    const int64_t n = nl_array_size(w);
    if (nl_array_size(g) != n)
        return nl_error("%s update: parameter has %lld elements, gradient %lld", who, (long long)n,
                        (long long)nl_array_size(g));
    for (int k = 0; k < n_states; k++) {
        if (!states[k]) return nl_error("%s update: state array %d is missing", who, k + 1);
        if (nl_array_size(states[k]) != n)
            return nl_error("%s update: parameter has %lld elements, state %d has %lld", who, (long long)n, k + 1,
                            (long long)nl_array_size(states[k]));
        int clash = states[k] == w || states[k] == g;
        for (int j = 0; j < k; j++) clash |= states[j] == states[k];
        if (clash)
            return nl_error("%s update: state arrays must be distinct from each other and from the parameter and "
                            "its gradient", who);
    }
    nl_array *both[2] = {w, g};
    const int dev = device_of(2, both);
    if (!(*pg = (const float *)nl_array_device(g, NL_READ, dev))) return -1;
    if (!(*pw = (float *)nl_array_device(w, NL_READWRITE, dev))) return -1;
    for (int k = 0; k < n_states; k++)
        if (!(ps[k] = (float *)nl_array_device(states[k], NL_READWRITE, dev))) return -1;
    return dev;
}

/* Scalars of an update: k[] as in core/solvers' nl_solver_ctx. */
struct sk { float k[8]; };

#define KERNEL(name) __global__ void name(int64_t n, float *w, const float *__restrict__ g, float *s0, float *s1, \
                                          float *s2, sk c)

KERNEL(k_sgd) { NLC_LOOP(i, n) w[i] -= c.k[0] * g[i]; }

KERNEL(k_momentum) {
    const float lr = c.k[0], mom = c.k[1];
    NLC_LOOP(i, n) {
        s0[i] = mom * s0[i] + lr * g[i];
        w[i] -= s0[i];
    }
}

KERNEL(k_nesterov) {
    const float lr = c.k[0], mom = c.k[1];
    NLC_LOOP(i, n) {
        const float prev = s0[i];
        s0[i] = mom * s0[i] - lr * g[i];
        w[i] += -mom * prev + (1 + mom) * s0[i];
    }
}

KERNEL(k_sgdw) {
    const float lr = c.k[0], mom = c.k[1], decay = c.k[2];
    NLC_LOOP(i, n) {
        s0[i] = mom * s0[i] + lr * g[i];
        w[i] = w[i] - s0[i] - decay * w[i];
    }
}

KERNEL(k_adagrad) {
    const float lr = c.k[0], eps = c.k[1];
    NLC_LOOP(i, n) {
        s0[i] += g[i] * g[i];
        w[i] -= lr * g[i] / (sqrtf(s0[i]) + eps);
    }
}

KERNEL(k_adadelta) {
    const float lr = c.k[0], decay = c.k[1], eps = c.k[2];
    NLC_LOOP(i, n) {
        s0[i] = s0[i] * decay + g[i] * g[i] * (1 - decay);
        const float delta = sqrtf((s1[i] + eps) / (s0[i] + eps)) * g[i];
        s1[i] = s1[i] * decay + delta * delta * (1 - decay);
        w[i] -= lr * delta;
    }
}

KERNEL(k_rmsprop) {
    const float lr = c.k[0], decay = c.k[1], eps = c.k[2];
    NLC_LOOP(i, n) {
        s0[i] = s0[i] * decay + g[i] * g[i] * (1 - decay);
        w[i] -= lr / (sqrtf(s0[i]) + eps) * g[i];
    }
}

KERNEL(k_rmsprop_graves) {
    const float lr = c.k[0], decay = c.k[1], mom = c.k[2], eps = c.k[3];
    NLC_LOOP(i, n) {
        s0[i] = decay * s0[i] + (1 - decay) * g[i] * g[i];
        s1[i] = decay * s1[i] + (1 - decay) * g[i];
        s2[i] = mom * s2[i] - lr * g[i] / sqrtf(s0[i] - s1[i] * s1[i] + eps);
        w[i] += s2[i];
    }
}

KERNEL(k_adam) {
    const float at = c.k[0], b1 = c.k[1], b2 = c.k[2], eps = c.k[3], decay = c.k[4];
    NLC_LOOP(i, n) {
        s0[i] = b1 * s0[i] + (1 - b1) * g[i];
        s1[i] = b2 * s1[i] + (1 - b2) * g[i] * g[i];
        w[i] = w[i] - at * s0[i] / (sqrtf(s1[i]) + eps) - decay * w[i];
    }
}

KERNEL(k_amsgrad) {
    const float at = c.k[0], b1 = c.k[1], b2 = c.k[2], eps = c.k[3];
    NLC_LOOP(i, n) {
        s0[i] = b1 * s0[i] + (1 - b1) * g[i];
        s1[i] = b2 * s1[i] + (1 - b2) * g[i] * g[i];
        s2[i] = s2[i] > s1[i] ? s2[i] : s1[i];
        w[i] = w[i] - at * s0[i] / (sqrtf(s2[i]) + eps);
    }
}

KERNEL(k_adabound) {
    const float at = c.k[0], b1 = c.k[1], b2 = c.k[2], eps = c.k[3], lower = c.k[4], upper = c.k[5];
    NLC_LOOP(i, n) {
        s0[i] = b1 * s0[i] + (1 - b1) * g[i];
        s1[i] = b2 * s1[i] + (1 - b2) * g[i] * g[i];
        float eta = at / (sqrtf(s1[i]) + eps);
        eta = eta > lower ? eta : lower;
        eta = upper < eta ? upper : eta;
        w[i] = w[i] - eta * s0[i];
    }
}

KERNEL(k_adamax) {
    const float at = c.k[0], b1 = c.k[1], b2 = c.k[2], eps = c.k[3];
    NLC_LOOP(i, n) {
        s0[i] = b1 * s0[i] + (1 - b1) * g[i];
        const float du = b2 * s1[i], ag = fabsf(g[i]);
        s1[i] = du > ag ? du : ag;
        w[i] = w[i] - at * s0[i] / (s1[i] + eps);
    }
}

/* Lars: g <- g + decay*w (in place, as NNabla); v <- momentum*v + local*g; w <- w - v */
__global__ void k_lars(int64_t n, float *w, float *g, float *v, float local, float mom, float decay) {
    NLC_LOOP(i, n) {
        if (decay != 0.0f) g[i] += decay * w[i];
        v[i] = mom * v[i] + local * g[i];
        w[i] -= v[i];
    }
}

/* Lamb pass 1: m, v updated; per block: sum r^2 and sum w^2 into part[2 * block + 0/1] */
__global__ void k_lamb1(int64_t n, const float *w, const float *g, float *m, float *v, float b1, float b2, float c1,
                        float c2, float eps, float decay, float *part) {
    float rs = 0.0f, ws = 0.0f;
    NLC_LOOP(i, n) {
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        const float r = (m[i] / c1) / (sqrtf(v[i] / c2) + eps) + decay * w[i];
        rs += r * r;
        ws += w[i] * w[i];
    }
    rs = nlc_block_sum(rs);
    ws = nlc_block_sum(ws);
    if (threadIdx.x == 0) { part[2 * blockIdx.x] = rs; part[2 * blockIdx.x + 1] = ws; }
}

__global__ void k_lamb2(int64_t n, float *w, const float *m, const float *v, float c1, float c2, float eps, float decay,
                        float eta_local) {
    NLC_LOOP(i, n) {
        const float r = (m[i] / c1) / (sqrtf(v[i] / c2) + eps) + decay * w[i];
        w[i] = w[i] - eta_local * r;
    }
}

/* per block: sum of squares of x (and of y when given) and the count of non-finite x */
__global__ void k_sumsq(int64_t n, const float *x, const float *y, float *part) {
    float s = 0.0f, t = 0.0f, bad = 0.0f;
    NLC_LOOP(i, n) {
        const float v = x[i];
        s += v * v;
        if (!isfinite(v)) bad += 1.0f;
        if (y) t += y[i] * y[i];
    }
    s = nlc_block_sum(s);
    t = nlc_block_sum(t);
    bad = nlc_block_sum(bad);
    if (threadIdx.x == 0) { part[3 * blockIdx.x] = s; part[3 * blockIdx.x + 1] = t; part[3 * blockIdx.x + 2] = bad; }
}

enum { MAX_PART_BLOCKS = 1024 };

/* Sums (in double) the per-block partials of stride k: out[j] = sum_b part[k * b + j]. */
static int sum_parts(const float *part, unsigned blocks, int k, double *out) {
    static float h[3 * MAX_PART_BLOCKS];
    NLC_CUDA(cudaMemcpy(h, part, (size_t)k * blocks * sizeof(float), cudaMemcpyDeviceToHost));
    for (int j = 0; j < k; j++) out[j] = 0.0;
    for (unsigned b = 0; b < blocks; b++)
        for (int j = 0; j < k; j++) out[j] += h[k * b + j];
    return 0;
}

static unsigned part_blocks(int64_t n) {
    unsigned b = nlc_blocks(n);
    return b > (unsigned)MAX_PART_BLOCKS ? (unsigned)MAX_PART_BLOCKS : b;
}

/* sums[0] = sum x^2, sums[1] = sum y^2 (y may be NULL), sums[2] = non-finite x */
static int sum_squares(int dev, const float *x, const float *y, int64_t n, double *sums) {
    sums[0] = sums[1] = sums[2] = 0.0;
    if (n == 0) return 0;
    const unsigned blocks = part_blocks(n);
    nlc_buf part;
    NLC_PTR(float *, d, part.get(3 * (int64_t)blocks, dev));
    k_sumsq<<<blocks, NLC_THREADS>>>(n, x, y, d);
    NLC_LAUNCHED("sum of squares");
    return sum_parts(d, blocks, 3, sums);
}

static float adam_correction(float beta1, float beta2, int64_t t) {
    return (float)(sqrt(1 - pow((double)beta2, (double)t)) / (1 - pow((double)beta1, (double)t)));
}

static int check_t(const char *who, int64_t t) {
    if (t < 1) return nl_error("%s update: step count t must be at least 1, got %lld", who, (long long)t);
    return 0;
}

template <class K>
static int run(const char *who, K kernel, nl_array *w, nl_array *g, int n_states, nl_array *const *states, sk c) {
    float *pw, *ps[MAX_STATES] = {nullptr, nullptr, nullptr, nullptr};
    const float *pg;
    if (solver_ptrs(who, w, g, n_states, states, &pw, &pg, ps) < 0) return -1;
    const int64_t n = nl_array_size(w);
    if (n == 0) return 0;
    kernel<<<nlc_blocks(n), NLC_THREADS>>>(n, pw, pg, ps[0], ps[1], ps[2], c);
    NLC_LAUNCHED(who);
    return 0;
}

extern "C" {

int nl_cuda_sgd_update(nl_array *w, nl_array *g, float lr) {
    if (nl_array_size(w) != nl_array_size(g))
        return nl_error("sgd update: parameter has %lld elements, gradient %lld", (long long)nl_array_size(w),
                        (long long)nl_array_size(g));
    return run("Sgd", k_sgd, w, g, 0, nullptr, sk{{lr}});
}

int nl_cuda_weight_decay(nl_array *w, nl_array *g, float decay) {
    if (decay == 0.0f) return 0;
    return nl_cuda_axpy(g, decay, w);
}

int nl_cuda_momentum_update(nl_array *w, nl_array *g, nl_array *m, float lr, float momentum) {
    return run("Momentum", k_momentum, w, g, 1, &m, sk{{lr, momentum}});
}

int nl_cuda_nesterov_update(nl_array *w, nl_array *g, nl_array *m, float lr, float momentum) {
    return run("Nesterov", k_nesterov, w, g, 1, &m, sk{{lr, momentum}});
}

int nl_cuda_sgdw_update(nl_array *w, nl_array *g, nl_array *m, float lr, float momentum, float decay) {
    return run("SgdW", k_sgdw, w, g, 1, &m, sk{{lr, momentum, decay}});
}

int nl_cuda_adagrad_update(nl_array *w, nl_array *g, nl_array *v, float lr, float eps) {
    return run("Adagrad", k_adagrad, w, g, 1, &v, sk{{lr, eps}});
}

int nl_cuda_adadelta_update(nl_array *w, nl_array *g, nl_array *e_sqr_grad, nl_array *e_sqr_delta, float lr,
                            float decay, float eps) {
    nl_array *st[2] = {e_sqr_grad, e_sqr_delta};
    return run("Adadelta", k_adadelta, w, g, 2, st, sk{{lr, decay, eps}});
}

int nl_cuda_rmsprop_update(nl_array *w, nl_array *g, nl_array *v, float lr, float decay, float eps) {
    return run("RMSprop", k_rmsprop, w, g, 1, &v, sk{{lr, decay, eps}});
}

int nl_cuda_rmsprop_graves_update(nl_array *w, nl_array *g, nl_array *n, nl_array *gm, nl_array *d, float lr,
                                  float decay, float momentum, float eps) {
    nl_array *st[3] = {n, gm, d};
    return run("RMSpropGraves", k_rmsprop_graves, w, g, 3, st, sk{{lr, decay, momentum, eps}});
}

int nl_cuda_adam_update(nl_array *w, nl_array *g, nl_array *mean, nl_array *var, float alpha, float beta1,
                        float beta2, float eps, int64_t t, float decay) {
    if (check_t("Adam", t)) return -1;
    nl_array *st[2] = {mean, var};
    return run("Adam", k_adam, w, g, 2, st, sk{{alpha * adam_correction(beta1, beta2, t), beta1, beta2, eps, decay}});
}

int nl_cuda_amsgrad_update(nl_array *w, nl_array *g, nl_array *m, nl_array *v, nl_array *v_hat, float alpha,
                           float beta1, float beta2, float eps, int bias_correction, int64_t t) {
    if (check_t("AMSGRAD", t)) return -1;
    nl_array *st[3] = {m, v, v_hat};
    const float at = alpha * (bias_correction ? adam_correction(beta1, beta2, t) : 1.0f);
    return run("AMSGRAD", k_amsgrad, w, g, 3, st, sk{{at, beta1, beta2, eps}});
}

int nl_cuda_adabound_update(nl_array *w, nl_array *g, nl_array *mean, nl_array *var, float alpha, float init_alpha,
                            float beta1, float beta2, float eps, float final_lr, float gamma, int64_t t) {
    if (check_t("AdaBound", t)) return -1;
    nl_array *st[2] = {mean, var};
    const float final = final_lr * (alpha / init_alpha), gt = gamma * (float)t;
    sk c = {{alpha * adam_correction(beta1, beta2, t), beta1, beta2, eps, final * (1 - 1 / (gt + 1)),
             final * (1 + 1 / gt)}};
    return run("AdaBound", k_adabound, w, g, 2, st, c);
}

int nl_cuda_adamax_update(nl_array *w, nl_array *g, nl_array *m, nl_array *u, float alpha, float beta1, float beta2,
                          float eps, int64_t t) {
    if (check_t("Adamax", t)) return -1;
    nl_array *st[2] = {m, u};
    const float at = alpha * (float)(1 / (1 - pow((double)beta1, (double)t)));
    return run("Adamax", k_adamax, w, g, 2, st, sk{{at, beta1, beta2, eps}});
}

int nl_cuda_lars_update(nl_array *w, nl_array *g, nl_array *v, float lr, float momentum, float coefficient,
                        float eps, float decay) {
    float *pw, *pv;
    const float *pg0;
    const int dev = solver_ptrs("Lars", w, g, 1, &v, &pw, &pg0, &pv);
    if (dev < 0) return -1;
    const int64_t n = nl_array_size(w);
    double sums[3];
    if (sum_squares(dev, pg0, pw, n, sums)) return -1;
    const float gn = (float)sqrt(sums[0]), wn = (float)sqrt(sums[1]);
    float x = gn + decay * wn;
    if (!(x >= 0))
        return nl_error("Lars update: the local learning rate would be negative or NaN (gradient norm %g, weight "
                        "norm %g, weight decay %g)", gn, wn, decay);
    if (x < eps) x += eps;
    const float local = wn < eps ? lr : lr * coefficient * wn / x;
    NLC_PTR(float *, pg, (float *)nl_array_device(g, NL_READWRITE, dev));
    if (n == 0) return 0;
    k_lars<<<nlc_blocks(n), NLC_THREADS>>>(n, pw, pg, pv, local, momentum, decay);
    NLC_LAUNCHED("Lars");
    return 0;
}

int nl_cuda_lamb_update(nl_array *w, nl_array *g, nl_array *mean, nl_array *var, float eta, float beta1, float beta2,
                        float gamma_l, float gamma_u, float eps, int bias_correction, float decay, int64_t t) {
    if (t < 1) return nl_error("Lamb update: step count t must be at least 1, got %lld", (long long)t);
    nl_array *st[2] = {mean, var};
    float *pw, *ps[2];
    const float *pg;
    const int dev = solver_ptrs("Lamb", w, g, 2, st, &pw, &pg, ps);
    if (dev < 0) return -1;
    const int64_t n = nl_array_size(w);
    if (n == 0) return 0;
    const float c1 = bias_correction ? (float)(1 - pow((double)beta1, (double)t)) : 1.0f;
    const float c2 = bias_correction ? (float)(1 - pow((double)beta2, (double)t)) : 1.0f;
    const unsigned blocks = part_blocks(n);
    nlc_buf part;
    NLC_PTR(float *, d, part.get(2 * (int64_t)blocks, dev));
    k_lamb1<<<blocks, NLC_THREADS>>>(n, pw, pg, ps[0], ps[1], beta1, beta2, c1, c2, eps, decay, d);
    NLC_LAUNCHED("Lamb");
    double sums[2];
    if (sum_parts(d, blocks, 2, sums)) return -1;
    const float rn = (float)sqrt(sums[0]);
    float wn = (float)sqrt(sums[1]);
    if (wn < gamma_l) wn = gamma_l;
    if (wn > gamma_u) wn = gamma_u;
    const double local = rn > eps ? (double)(wn / rn) : 1.0;
    k_lamb2<<<nlc_blocks(n), NLC_THREADS>>>(n, pw, ps[0], ps[1], c1, c2, eps, decay, (float)(eta * local));
    NLC_LAUNCHED("Lamb");
    return 0;
}

__global__ void k_axpy_(int64_t n, float *y, float a, const float *x) {
    NLC_LOOP(i, n) y[i] += a * x[i];
}
__global__ void k_scale_(int64_t n, float *x, float a) {
    NLC_LOOP(i, n) x[i] *= a;
}

int nl_cuda_axpy(nl_array *y, float alpha, nl_array *x) {
    if (nl_array_size(y) != nl_array_size(x))
        return nl_error("axpy: arrays of %lld and %lld elements", (long long)nl_array_size(y),
                        (long long)nl_array_size(x));
    nl_array *both[2] = {y, x};
    const int dev = device_of(2, both);
    NLC_PTR(const float *, px, (const float *)nl_array_device(x, NL_READ, dev));
    NLC_PTR(float *, py, (float *)nl_array_device(y, NL_READWRITE, dev));
    const int64_t n = nl_array_size(y);
    if (n == 0) return 0;
    k_axpy_<<<nlc_blocks(n), NLC_THREADS>>>(n, py, alpha, px);
    NLC_LAUNCHED("axpy");
    return 0;
}

int nl_cuda_scale(nl_array *x, float alpha) {
    NLC_PTR(float *, p, (float *)nl_array_device(x, NL_READWRITE, device_of(1, &x)));
    const int64_t n = nl_array_size(x);
    if (n == 0) return 0;
    k_scale_<<<nlc_blocks(n), NLC_THREADS>>>(n, p, alpha);
    NLC_LAUNCHED("scale");
    return 0;
}

double nl_cuda_sum_squares(nl_array *x) {
    const int dev = device_of(1, &x);
    const float *p = (const float *)nl_array_device(x, NL_READ, dev);
    double sums[3];
    if (!p || sum_squares(dev, p, nullptr, nl_array_size(x), sums)) return NAN;
    return sums[0];
}

int nl_cuda_has_inf_or_nan(nl_array *x) {
    const int dev = device_of(1, &x);
    const float *p = (const float *)nl_array_device(x, NL_READ, dev);
    double sums[3];
    if (!p || sum_squares(dev, p, nullptr, nl_array_size(x), sums)) return -1;
    return sums[2] > 0.0 ? 1 : 0;
}

}   /* extern "C" */
