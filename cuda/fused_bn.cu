/*
 * fused_bn.cu - the CUDA twin of normalization_ext.c's fused_batch_normalization:
 * y = relu(batch_normalization(x, beta, gamma, mean, variance) + z), with every variant
 * the CPU has: any kept axes (adjacent or not), z or none, batch_stat = true (batch
 * statistics; the running mean and variance updated in place with decay_rate and the
 * unbiased variance; they get no gradient) or false (the running statistics as they are;
 * mean and variance get gradients).
 *
 * The batch-norm part is the CPU's "tensor norm": the setup's norm_state (norm_ext_plan.h,
 * read from f->state), whose statistic, beta and gamma maps are all the kept axes, run by
 * norm_ext.cu's kernels through tensor_norm.cuh's launchers (statistics, the affine map
 * with the add of z and the relu fused in, backward sums, beta/gamma gradients, dx). Here:
 * the running statistics' update, the given statistics (batch_stat = false), the relu
 * mask backwards (and z's gradient), and the gradients of mean and variance. The
 * per-element math (nl_bn_running, nl_tn_rstd, nl_fbn_act, nl_fbn_mask, nl_fbn_dstat) is
 * norm_ext_plan.h's, which the CPU code calls too. accum[i] adds into input i's gradient,
 * else it is overwritten.
 */
#include "tensor_norm.cuh"

/* The statistics forward used, for backward (the CPU keeps them in scratch 0). */
struct fbn_dev {
    nlc_buf ms;            /* mean (nstat), then rstd (nstat) */
    int64_t nstat = -1;    /* statistics of the last forward, -1 before any */
};

/* mean (floats), var (doubles): (ns) batch statistics; rm, rv: (ns) the running ones,
 * updated in place: r = decay * r + (1 - decay) * v (the variance times unbias) */
__global__ void k_fbn_running(int64_t ns, double decay, double unbias, const float *__restrict__ mean,
                              const double *__restrict__ var, float *rm, float *rv) {
    NLC_LOOP(k, ns) {
        rm[k] = nl_bn_running(rm[k], decay, mean[k], 1.0);
        rv[k] = nl_bn_running(rv[k], decay, var[k], unbias);
    }
}

/* rm, rv, mean, rstd: (ns); mean = rm, rstd = 1/sqrt(rv + eps) (the given statistics) */
__global__ void k_fbn_given(int64_t ns, double eps, const float *__restrict__ rm, const float *__restrict__ rv,
                            float *mean, float *rstd) {
    NLC_LOOP(k, ns) {
        mean[k] = rm[k];
        rstd[k] = nl_tn_rstd(rv[k], eps);
    }
}

/* y, dy, dyr, dz: n elements; dyr = dy where y > 0, else 0; dz (NULL: not wanted) = dyr,
 * added when acc_z */
__global__ void k_fbn_mask(int64_t n, const float *__restrict__ y, const float *__restrict__ dy, float *dyr,
                           float *dz, bool acc_z) {
    NLC_LOOP(i, n) {
        const float v = nl_fbn_mask(y[i], dy[i]);
        dyr[i] = v;
        if (dz) dz[i] = acc_z ? dz[i] + v : v;
    }
}

/* rstd, a, b, g: (ns); g = the mean's (MEAN) gradient -rstd * a or the variance's
 * -0.5 rstd^2 b, added when acc */
__global__ void k_fbn_dstat(int64_t ns, bool mean, const float *__restrict__ rstd, const double *__restrict__ a,
                            const double *__restrict__ b, float *g, bool acc) {
    NLC_LOOP(k, ns) {
        const float v = nl_fbn_dstat(mean, rstd[k], a[k], b[k]);
        g[k] = acc ? g[k] + v : v;
    }
}

/* The running statistics' device copies, to update in place (mean first). 0 or -1. */
static int running(nl_func *f, float **rm, float **rv) {
    *rm = (float *)nl_array_device(nl_in(f, FB_MEAN)->data, NL_READWRITE, f->device_id);
    *rv = *rm ? (float *)nl_array_device(nl_in(f, FB_VAR)->data, NL_READWRITE, f->device_id) : nullptr;
    return *rm && *rv ? 0 : -1;
}

/* mean, rstd (ns each) = the running statistics as they are (batch_stat = false) */
static int given_stats(nl_func *f, int64_t ns, float *mean, float *rstd) {
    NLC_PTR(const float *, rm, nlc_in(f, FB_MEAN));
    NLC_PTR(const float *, rv, nlc_in(f, FB_VAR));
    if (ns == 0) return 0;
    if (nlc_set_device(f->device_id)) return -1;
    k_fbn_given<<<nlc_blocks(ns), NLC_THREADS>>>(ns, nl_arg_float(f, FB_EPS), rm, rv, mean, rstd);
    NLC_LAUNCHED("fused_batch_normalization (statistics)");
    return 0;
}

static int fbn_forward(nl_func *f) {
    const norm_state *s = (const norm_state *)f->state;
    const tn_map *m = &s->m;
    const int dev = f->device_id;
    const int64_t ns = m->nstat;
    const double eps = nl_arg_float(f, FB_EPS), decay = nl_arg_float(f, FB_DECAY);
    fbn_dev *st = nlc_state<fbn_dev>(f);
    if (!st) return -1;
    st->nstat = -1;
    NLC_PTR(const float *, x, nlc_in(f, FB_X));
    NLC_PTR(const float *, beta, nlc_in(f, FB_BETA));
    NLC_PTR(const float *, gamma, nlc_in(f, FB_GAMMA));
    const float *z = nullptr;
    if (f->in[FB_Z]) { NLC_PTR(const float *, t, nlc_in(f, FB_Z)); z = t; }
    NLC_PTR(float *, y, nlc_out(f, 0));
    NLC_PTR(float *, ms, st->ms.get(2 * ns + 1, dev));
    if (!nl_arg_bool(f, FB_BATCH_STAT)) {
        if (given_stats(f, ns, ms, ms + ns)) return -1;
    } else if (m->size == 0) {   /* the CPU's empty sums: mean 0, rstd 1/sqrt(eps); no update */
        if (nlc_fill(dev, ms, 0.0f, ns) || nlc_fill(dev, ms + ns, nl_tn_rstd(0.0, eps), ns)) return -1;
    } else {
        nlc_buf vbuf;
        NLC_PTR(float *, vf, vbuf.get(2 * ns, dev));
        double *var = (double *)(void *)vf;
        if (nlc_tn_stats(dev, m, x, eps, ms, ms + ns, var)) return -1;
        float *rm, *rv;
        if (running(f, &rm, &rv)) return -1;
        const double n = (double)m->count, unbias = n > 1 ? n / (n - 1) : 1.0;
        if (nlc_set_device(dev)) return -1;
        k_fbn_running<<<nlc_blocks(ns), NLC_THREADS>>>(ns, decay, unbias, ms, var, rm, rv);
        NLC_LAUNCHED("fused_batch_normalization (running statistics)");
    }
    if (m->size > 0 && nlc_tn_apply(dev, m, x, ms, ms + ns, beta, gamma, z, true, y)) return -1;
    st->nstat = ns;
    return 0;
}

static int fbn_backward(nl_func *f, const bool *prop, const bool *accum) {
    const norm_state *s = (const norm_state *)f->state;
    const tn_map *m = &s->m;
    const int dev = f->device_id;
    const int64_t ns = m->nstat, n = m->size;
    const bool batch = nl_arg_bool(f, FB_BATCH_STAT);
    bool any = false;
    for (int i = 0; i < f->n_in; i++) any |= f->in[i] && prop[i];
    if (!any) return 0;
    fbn_dev *st = nlc_state<fbn_dev>(f);
    if (!st) return -1;
    if (st->nstat != ns || !st->ms.p) return nl_error("forward must run before backward");
    /* past the relu: dyr = dy masked by y > 0, which is also z's gradient */
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    NLC_PTR(const float *, y, nlc_out_r(f, 0));
    float *dz = nullptr;
    const bool pz = f->in[FB_Z] && prop[FB_Z];
    if (pz) { NLC_PTR(float *, t, nlc_in_grad(f, FB_Z, accum[FB_Z])); dz = t; }
    nlc_buf rbuf;
    NLC_PTR(float *, dyr, rbuf.get(n, dev));
    if (n > 0) {
        if (nlc_set_device(dev)) return -1;
        k_fbn_mask<<<nlc_blocks(n), NLC_THREADS>>>(n, y, dy, dyr, dz, pz && accum[FB_Z]);
        NLC_LAUNCHED("fused_batch_normalization (relu backward)");
    }
    if (!prop[FB_X] && !prop[FB_BETA] && !prop[FB_GAMMA] && !prop[FB_MEAN] && !prop[FB_VAR]) return 0;
    NLC_PTR(const float *, x, nlc_in(f, FB_X));
    NLC_PTR(const float *, gamma, nlc_in(f, FB_GAMMA));
    float *mean = st->ms.p, *rstd = st->ms.p + ns;
    if (!batch && given_stats(f, ns, mean, rstd)) return -1;   /* as they are now, as the CPU */
    /* a = sum dyr*g, b = sum dyr*g*xhat per statistic (zeros when x is empty) */
    nlc_buf abuf;
    NLC_PTR(float *, abf, abuf.get(4 * ns, dev));
    double *a = (double *)(void *)abf, *b = a + ns;
    if (n > 0) {
        if (nlc_tn_sums(dev, m, x, dyr, mean, rstd, gamma, a, b)) return -1;
    } else if (ns > 0) {
        if (nlc_set_device(dev)) return -1;
        NLC_CUDA(cudaMemsetAsync(a, 0, 2 * (size_t)ns * sizeof(double)));
    }
    for (int i = FB_BETA; i <= FB_GAMMA; i++) {
        if (!prop[i]) continue;
        NLC_PTR(float *, g, nlc_in_grad(f, i, accum[i]));
        if (n == 0) {   /* the CPU's empty sums: zeros */
            if (!accum[i] && nlc_fill(dev, g, 0.0f, ns)) return -1;
            continue;
        }
        if (nlc_tn_param_grad(dev, m, i == FB_GAMMA, nl_in(f, i)->size, x, dyr, mean, rstd, g, accum[i])) return -1;
    }
    if (prop[FB_X]) {
        NLC_PTR(float *, dx, nlc_in_grad(f, FB_X, accum[FB_X]));
        if (n > 0 && nlc_tn_dx(dev, m, batch, x, dyr, mean, rstd, gamma, a, b, dx, accum[FB_X])) return -1;
    }
    for (int i = FB_MEAN; i <= FB_VAR; i++) {
        if (!prop[i]) continue;
        if (batch) {   /* running statistics get no gradient */
            if (!accum[i]) nl_array_zero(nl_in(f, i)->grad);
            continue;
        }
        NLC_PTR(float *, g, nlc_in_grad(f, i, accum[i]));
        if (ns == 0) continue;
        if (nlc_set_device(dev)) return -1;
        k_fbn_dstat<<<nlc_blocks(ns), NLC_THREADS>>>(ns, i == FB_MEAN, rstd, a, b, g, accum[i]);
        NLC_LAUNCHED("fused_batch_normalization (statistics gradients)");
    }
    return 0;
}

int nlc_register_fused_bn(void) {
    return nlc_register("fused_batch_normalization", "cuda", fbn_forward, fbn_backward);
}
