/*
 * norm_ext.cu - the CUDA twins of normalization_ext.c's layer_normalization,
 * instance_normalization, group_normalization and weight_normalization, and of
 * pooling_ext.c's global_average_pooling, sum_pooling and unpooling, with every variant
 * the CPU has (optional beta/gamma, any batch/channel axes, num_groups, eps; weight norm's
 * dim; sum pooling's stride, pad and ignore_border; unpooling's kernel).
 *
 * Nothing is planned here: the CPU setup's state (norm_ext_plan.h's norm_state and
 * wn_state, pooling_ext_plan.h's gap/sp/up_state, read from f->state) says where each
 * element goes, and the per-element math (nl_tn_affine, nl_tn_dx, nl_wn_dw, ...), the
 * row offsets (tn_row; tn_elem adds the column as the CPU loops do) and sum pooling's
 * window (sp_window) are the host/device functions the CPU code calls, so the CPU specs
 * test them.
 *   - A reduction over a group (one statistic, one beta/gamma entry, one weight-norm slice,
 *     one pooled map) is one block per group (grid-stride over the groups), summing in
 *     double where the CPU does (two passes for mean and variance, as the CPU).
 *   - Element-wise passes are one thread per element.
 *   - Backward passes that add several values into one element (sum pooling, unpooling)
 *     gather per input element in the CPU's order instead of scattering: no atomics, and
 *     the float sums are the CPU's.
 * The tensor-norm kernels are also fused_batch_normalization's (fused_bn.cu), through the
 * launchers declared in tensor_norm.cuh (with the walk helpers clip_grad.cu uses too).
 */
#include "tensor_norm.cuh"
extern "C" {
#include "pooling_ext_plan.h"
}

/* ---- layer / instance / group normalization ------------------------------------------- */

/* tn_walk, tn_walk_of, walk_at, block_sum_d, group_grid: tensor_norm.cuh */

/* x: the map's x; w: the statistic walk (groups = nstat); block per statistic p:
 * mean[p] = sum x / n, rstd[p] = 1/sqrt(sum (x - mean)^2 / n + eps), sums in double;
 * var (NULL: not wanted): (nstat) the biased variances */
__global__ void k_tn_stats(tn_walk w, const float *__restrict__ x, double eps, float *mean, float *rstd, double *var) {
    const double cnt = w.count > 0 ? (double)w.count : 1.0;
    for (int64_t p = blockIdx.x; p < w.groups; p += gridDim.x) {
        double s = 0;
        for (int64_t j = threadIdx.x; j < w.count; j += blockDim.x) s += x[walk_at(w, p, j)];
        const double mu = block_sum_d(s) / cnt;
        double q = 0;
        for (int64_t j = threadIdx.x; j < w.count; j += blockDim.x) {
            const double d = x[walk_at(w, p, j)] - mu;
            q += __dmul_rn(d, d);
        }
        q = block_sum_d(q);
        if (threadIdx.x == 0) {
            const double v = q / cnt;
            mean[p] = (float)mu;
            rstd[p] = nl_tn_rstd(v, eps);
            if (var) var[p] = v;
        }
    }
}

/* x, y, z: m.size elements; mean, rstd: (nstat); beta, gamma (NULL = absent): their
 * arrays; y = (x - mean) * rstd * gamma + beta through the map's offsets; RELU (fused
 * batch norm): y = relu(y + z), z NULL = absent */
template <bool RELU>
__global__ void k_tn_fwd(tn_map m, const float *__restrict__ x, const float *__restrict__ mean,
                         const float *__restrict__ rstd, const float *__restrict__ beta,
                         const float *__restrict__ gamma, const float *__restrict__ z, float *y) {
    NLC_LOOP(e, m.size) {
        int64_t off[M_N];
        tn_elem(&m, e, off);
        const int64_t s = off[M_STAT];
        const float v = nl_tn_affine(x[e], mean[s], rstd[s], gamma != nullptr, gamma ? gamma[off[M_GAMMA]] : 1.0f,
                                     beta != nullptr, beta ? beta[off[M_BETA]] : 0.0f);
        y[e] = RELU ? nl_fbn_act(v, z != nullptr, z ? z[e] : 0.0f) : v;
    }
}

/* w: the statistic walk; block per statistic p: a[p] = sum dy*g, b[p] = sum dy*g*xhat in
 * double (g = gamma's entry, 1 without gamma) */
__global__ void k_tn_ab(tn_walk w, tn_map m, const float *__restrict__ x, const float *__restrict__ dy,
                        const float *__restrict__ mean, const float *__restrict__ rstd,
                        const float *__restrict__ gamma, double *a, double *b) {
    for (int64_t p = blockIdx.x; p < w.groups; p += gridDim.x) {
        const float mu = mean[p], rs = rstd[p];
        double sa = 0, sb = 0;
        for (int64_t j = threadIdx.x; j < w.count; j += blockDim.x) {
            const int64_t e = walk_at(w, p, j);
            int64_t off[M_N];
            tn_elem(&m, e, off);
            const float xh = nl_tn_xhat(x[e], mu, rs);
            const double d = dy[e], g = gamma ? gamma[off[M_GAMMA]] : 1.0f;
            const double dg = __dmul_rn(d, g);
            sa += dg;
            sb += __dmul_rn(dg, (double)xh);
        }
        sa = block_sum_d(sa);
        sb = block_sum_d(sb);
        if (threadIdx.x == 0) { a[p] = sa; b[p] = sb; }
    }
}

/* w: beta's (GAMMA = false) or gamma's (true) walk; block per entry p: the sum of dy
 * (beta) or dy*xhat (gamma) over the entry's elements in double, written to grad[p] as a
 * float (added when ACC) */
template <bool GAMMA, bool ACC>
__global__ void k_tn_param(tn_walk w, tn_map m, const float *__restrict__ x, const float *__restrict__ dy,
                           const float *__restrict__ mean, const float *__restrict__ rstd, float *grad) {
    for (int64_t p = blockIdx.x; p < w.groups; p += gridDim.x) {
        double s = 0;
        for (int64_t j = threadIdx.x; j < w.count; j += blockDim.x) {
            const int64_t e = walk_at(w, p, j);
            const double d = dy[e];
            if (GAMMA) {
                int64_t off[M_N];
                tn_elem(&m, e, off);
                const float xh = nl_tn_xhat(x[e], mean[off[M_STAT]], rstd[off[M_STAT]]);
                s += __dmul_rn(d, (double)xh);
            } else {
                s += d;
            }
        }
        s = block_sum_d(s);
        if (threadIdx.x == 0) grad[p] = ACC ? grad[p] + (float)s : (float)s;
    }
}

/* x, dy, dx: m.size elements; a, b: (nstat) from k_tn_ab; dx = rstd * (dy*g - a/n -
 * xhat * b/n), or without BATCH (given statistics; a, b unused) rstd * dy * g; added
 * when ACC */
template <bool BATCH, bool ACC>
__global__ void k_tn_dx(tn_map m, const float *__restrict__ x, const float *__restrict__ dy,
                        const float *__restrict__ mean, const float *__restrict__ rstd,
                        const float *__restrict__ gamma, const double *__restrict__ a,
                        const double *__restrict__ b, double inv_n, float *dx) {
    NLC_LOOP(e, m.size) {
        int64_t off[M_N];
        tn_elem(&m, e, off);
        const int64_t s = off[M_STAT];
        const float g = gamma ? gamma[off[M_GAMMA]] : 1.0f;
        const float v = BATCH ? nl_tn_dx(x[e], mean[s], rstd[s], dy[e], g, a[s], b[s], inv_n)
                              : nl_tn_dx_given(rstd[s], dy[e], g);
        dx[e] = ACC ? dx[e] + v : v;
    }
}

/* ---- the launchers (tensor_norm.cuh) ---- */

int nlc_tn_stats(int dev, const tn_map *m, const float *x, double eps, float *mean, float *rstd, double *var) {
    tn_walk w;
    if (tn_walk_of(m, M_STAT, m->nstat, &w)) return -1;
    if (nlc_set_device(dev)) return -1;
    k_tn_stats<<<group_grid(m->nstat), NLC_THREADS>>>(w, x, eps, mean, rstd, var);
    NLC_LAUNCHED("normalization (statistics)");
    return 0;
}

int nlc_tn_apply(int dev, const tn_map *m, const float *x, const float *mean, const float *rstd,
                 const float *beta, const float *gamma, const float *z, bool relu, float *y) {
    if (nlc_set_device(dev)) return -1;
    const unsigned nb = nlc_blocks(m->size);
    if (relu) k_tn_fwd<true><<<nb, NLC_THREADS>>>(*m, x, mean, rstd, beta, gamma, z, y);
    else k_tn_fwd<false><<<nb, NLC_THREADS>>>(*m, x, mean, rstd, beta, gamma, nullptr, y);
    NLC_LAUNCHED("normalization");
    return 0;
}

int nlc_tn_sums(int dev, const tn_map *m, const float *x, const float *dy, const float *mean, const float *rstd,
                const float *gamma, double *a, double *b) {
    tn_walk w;
    if (tn_walk_of(m, M_STAT, m->nstat, &w)) return -1;
    if (nlc_set_device(dev)) return -1;
    k_tn_ab<<<group_grid(m->nstat), NLC_THREADS>>>(w, *m, x, dy, mean, rstd, gamma, a, b);
    NLC_LAUNCHED("normalization (backward sums)");
    return 0;
}

int nlc_tn_param_grad(int dev, const tn_map *m, bool gamma_grad, int64_t entries, const float *x, const float *dy,
                      const float *mean, const float *rstd, float *grad, bool accum) {
    tn_walk w;
    if (tn_walk_of(m, gamma_grad ? M_GAMMA : M_BETA, entries, &w)) return -1;
    if (nlc_set_device(dev)) return -1;
    const unsigned b = group_grid(w.groups);
    if (gamma_grad) {
        if (accum) k_tn_param<true, true><<<b, NLC_THREADS>>>(w, *m, x, dy, mean, rstd, grad);
        else k_tn_param<true, false><<<b, NLC_THREADS>>>(w, *m, x, dy, mean, rstd, grad);
    } else {
        if (accum) k_tn_param<false, true><<<b, NLC_THREADS>>>(w, *m, x, dy, mean, rstd, grad);
        else k_tn_param<false, false><<<b, NLC_THREADS>>>(w, *m, x, dy, mean, rstd, grad);
    }
    NLC_LAUNCHED(gamma_grad ? "normalization (gamma gradient)" : "normalization (beta gradient)");
    return 0;
}

int nlc_tn_dx(int dev, const tn_map *m, bool batch, const float *x, const float *dy, const float *mean,
              const float *rstd, const float *gamma, const double *a, const double *b, float *dx, bool accum) {
    if (nlc_set_device(dev)) return -1;
    const double inv_n = m->count > 0 ? 1.0 / (double)m->count : 0.0;
    const unsigned nb = nlc_blocks(m->size);
    if (batch) {
        if (accum) k_tn_dx<true, true><<<nb, NLC_THREADS>>>(*m, x, dy, mean, rstd, gamma, a, b, inv_n, dx);
        else k_tn_dx<true, false><<<nb, NLC_THREADS>>>(*m, x, dy, mean, rstd, gamma, a, b, inv_n, dx);
    } else {
        if (accum) k_tn_dx<false, true><<<nb, NLC_THREADS>>>(*m, x, dy, mean, rstd, gamma, a, b, inv_n, dx);
        else k_tn_dx<false, false><<<nb, NLC_THREADS>>>(*m, x, dy, mean, rstd, gamma, a, b, inv_n, dx);
    }
    NLC_LAUNCHED("normalization (backward)");
    return 0;
}

/* ---- layer / instance / group normalization: the nodes ---- */

/* The statistics forward found, for backward (the CPU keeps them in scratch 0). */
struct tn_dev {
    nlc_buf ms;            /* mean (nstat), then rstd (nstat) */
    int64_t nstat = -1;    /* statistics of the last forward, -1 before any */
};

static int tn_forward(nl_func *f) {
    const norm_state *s = (const norm_state *)f->state;
    const tn_map *m = &s->m;
    const int dev = f->device_id;
    tn_dev *st = nlc_state<tn_dev>(f);
    if (!st) return -1;
    st->nstat = -1;
    NLC_PTR(const float *, x, nlc_in(f, IN_X));
    const float *beta = nullptr, *gamma = nullptr;
    if (s->has_beta) { NLC_PTR(const float *, t, nlc_in(f, IN_BETA)); beta = t; }
    if (s->has_gamma) { NLC_PTR(const float *, t, nlc_in(f, IN_GAMMA)); gamma = t; }
    NLC_PTR(float *, y, nlc_out(f, 0));
    const int64_t ns = m->nstat;
    NLC_PTR(float *, ms, st->ms.get(2 * ns + 1, dev));
    if (m->size == 0) {   /* the CPU's empty sums: mean 0, rstd 1/sqrt(eps) */
        if (nlc_fill(dev, ms, 0.0f, ns) || nlc_fill(dev, ms + ns, (float)(1.0 / sqrt(0.0 + s->eps)), ns)) return -1;
        st->nstat = ns;
        return 0;
    }
    if (nlc_tn_stats(dev, m, x, s->eps, ms, ms + ns, nullptr)) return -1;
    if (nlc_tn_apply(dev, m, x, ms, ms + ns, beta, gamma, nullptr, false, y)) return -1;
    st->nstat = ns;
    return 0;
}

/* Gradient of beta (GAMMA = false) or gamma over its walk. */
template <bool GAMMA>
static int tn_param_grad(nl_func *f, int i, bool accum, const tn_map *m, const float *x, const float *dy,
                         const float *mean, const float *rstd) {
    NLC_PTR(float *, g, nlc_in_grad(f, i, accum));
    if (m->size == 0)   /* the CPU's empty sums: zeros */
        return accum ? 0 : nlc_fill(f->device_id, g, 0.0f, nl_in(f, i)->size);
    return nlc_tn_param_grad(f->device_id, m, GAMMA, nl_in(f, i)->size, x, dy, mean, rstd, g, accum);
}

static int tn_backward(nl_func *f, const bool *prop, const bool *accum) {
    const norm_state *s = (const norm_state *)f->state;
    const tn_map *m = &s->m;
    const int dev = f->device_id;
    const bool pb = s->has_beta && prop[IN_BETA], pg = s->has_gamma && prop[IN_GAMMA];
    if (!prop[IN_X] && !pb && !pg) return 0;
    tn_dev *st = nlc_state<tn_dev>(f);
    if (!st) return -1;
    if (st->nstat != m->nstat || !st->ms.p) return nl_error("forward must run before backward");
    const int64_t ns = m->nstat;
    const float *mean = st->ms.p, *rstd = st->ms.p + ns;
    NLC_PTR(const float *, x, nlc_in(f, IN_X));
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    const float *gamma = nullptr;
    if (s->has_gamma) { NLC_PTR(const float *, t, nlc_in(f, IN_GAMMA)); gamma = t; }
    if (pb && tn_param_grad<false>(f, IN_BETA, accum[IN_BETA], m, x, dy, mean, rstd)) return -1;
    if (pg && tn_param_grad<true>(f, IN_GAMMA, accum[IN_GAMMA], m, x, dy, mean, rstd)) return -1;
    if (!prop[IN_X]) return 0;
    NLC_PTR(float *, dx, nlc_in_grad(f, IN_X, accum[IN_X]));
    if (m->size == 0) return 0;
    nlc_buf abuf;
    NLC_PTR(float *, abf, abuf.get(4 * ns, dev));
    double *a = (double *)(void *)abf, *b = a + ns;
    if (nlc_tn_sums(dev, m, x, dy, mean, rstd, gamma, a, b)) return -1;
    return nlc_tn_dx(dev, m, true, x, dy, mean, rstd, gamma, a, b, dx, accum[IN_X]);
}

/* ---- weight normalization -------------------------------------------------------------- */

/* w, dy (NULL in forward): (outer, J, inner); block per j: nr[j] = sqrt(sum w^2 + eps) as
 * a float; with dy also sdw[j] = sum dy*w, and (dg not NULL) dg[j] = sdw[j] / nr[j]
 * (added when acc); sums in double */
__global__ void k_wn_sums(wn_state s, double eps, const float *__restrict__ w, const float *__restrict__ dy,
                          float *nr, double *sdw, float *dg, bool acc) {
    const int64_t n = s.outer * s.inner;
    for (int64_t j = blockIdx.x; j < s.j; j += gridDim.x) {
        double a = 0, c = 0;
        for (int64_t t = threadIdx.x; t < n; t += blockDim.x) {
            const int64_t o = t / s.inner, i = t - o * s.inner, e = (o * s.j + j) * s.inner + i;
            const double v = w[e];
            a += __dmul_rn(v, v);
            if (dy) c += __dmul_rn((double)dy[e], v);
        }
        a = block_sum_d(a);
        if (dy) c = block_sum_d(c);
        if (threadIdx.x == 0) {
            const float nj = (float)sqrt(a + eps);
            nr[j] = nj;
            if (sdw) sdw[j] = c;
            if (dg) {
                const float v = (float)(c / (double)nj);
                dg[j] = acc ? dg[j] + v : v;
            }
        }
    }
}

/* w, y: (outer, J, inner); g, nr: (J); y = (g[j] / nr[j]) * w */
__global__ void k_wn_fwd(wn_state s, const float *__restrict__ w, const float *__restrict__ g,
                         const float *__restrict__ nr, float *y) {
    NLC_LOOP(e, s.outer * s.j * s.inner) {
        const int64_t j = (e / s.inner) % s.j;
        y[e] = __fmul_rn(__fdiv_rn(g[j], nr[j]), w[e]);
    }
}

/* w, dy, dw: (outer, J, inner); g, nr, sdw: (J); dw = g/n * (dy - w * sdw/n^2) (added
 * when ACC) */
template <bool ACC>
__global__ void k_wn_dw(wn_state s, const float *__restrict__ w, const float *__restrict__ g,
                        const float *__restrict__ dy, const float *__restrict__ nr,
                        const double *__restrict__ sdw, float *dw) {
    NLC_LOOP(e, s.outer * s.j * s.inner) {
        const int64_t j = (e / s.inner) % s.j;
        float k, q;
        nl_wn_kq(g[j], nr[j], sdw[j], &k, &q);
        const float v = nl_wn_dw(k, q, dy[e], w[e]);
        dw[e] = ACC ? dw[e] + v : v;
    }
}

static int wn_forward(nl_func *f) {
    const wn_state *s = (const wn_state *)f->state;
    const int dev = f->device_id;
    NLC_PTR(const float *, w, nlc_in(f, 0));
    NLC_PTR(const float *, g, nlc_in(f, 1));
    NLC_PTR(float *, y, nlc_out(f, 0));
    if (s->j == 0) return 0;
    nlc_buf nbuf;
    NLC_PTR(float *, nr, nbuf.get(s->j, dev));
    if (nlc_set_device(dev)) return -1;
    k_wn_sums<<<group_grid(s->j), NLC_THREADS>>>(*s, nl_arg_float(f, WN_EPS), w, nullptr, nr, nullptr, nullptr,
                                                  false);
    NLC_LAUNCHED("weight_normalization (norms)");
    const int64_t n = s->outer * s->j * s->inner;
    if (n == 0) return 0;
    k_wn_fwd<<<nlc_blocks(n), NLC_THREADS>>>(*s, w, g, nr, y);
    NLC_LAUNCHED("weight_normalization");
    return 0;
}

static int wn_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0] && !prop[1]) return 0;
    const wn_state *s = (const wn_state *)f->state;
    const int dev = f->device_id;
    NLC_PTR(const float *, w, nlc_in(f, 0));
    NLC_PTR(const float *, g, nlc_in(f, 1));
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    float *dg = nullptr, *dw = nullptr;
    if (prop[1]) { NLC_PTR(float *, t, nlc_in_grad(f, 1, accum[1])); dg = t; }
    if (prop[0]) { NLC_PTR(float *, t, nlc_in_grad(f, 0, accum[0])); dw = t; }
    if (s->j == 0) return 0;
    nlc_buf nbuf, sbuf;
    NLC_PTR(float *, nr, nbuf.get(s->j, dev));
    NLC_PTR(float *, sf, sbuf.get(2 * s->j, dev));
    double *sdw = (double *)(void *)sf;
    if (nlc_set_device(dev)) return -1;
    k_wn_sums<<<group_grid(s->j), NLC_THREADS>>>(*s, nl_arg_float(f, WN_EPS), w, dy, nr, sdw, dg, prop[1] && accum[1]);
    NLC_LAUNCHED("weight_normalization (backward sums)");
    const int64_t n = s->outer * s->j * s->inner;
    if (!dw || n == 0) return 0;
    if (accum[0]) k_wn_dw<true><<<nlc_blocks(n), NLC_THREADS>>>(*s, w, g, dy, nr, sdw, dw);
    else k_wn_dw<false><<<nlc_blocks(n), NLC_THREADS>>>(*s, w, g, dy, nr, sdw, dw);
    NLC_LAUNCHED("weight_normalization (backward)");
    return 0;
}

/* ---- global average pooling ------------------------------------------------------------ */

/* x: (maps, inner) -> y: (maps); block per map: the mean in double (0 when inner = 0) */
__global__ void k_gap_fwd(gap_state s, const float *__restrict__ x, float *y) {
    for (int64_t m = blockIdx.x; m < s.maps; m += gridDim.x) {
        double a = 0;
        for (int64_t i = threadIdx.x; i < s.inner; i += blockDim.x) a += x[m * s.inner + i];
        a = block_sum_d(a);
        if (threadIdx.x == 0) y[m] = s.inner > 0 ? (float)(a / (double)s.inner) : 0.0f;
    }
}

/* dy: (maps) -> dx: (maps, inner) = dy / inner (added when ACC) */
template <bool ACC>
__global__ void k_gap_bwd(gap_state s, const float *__restrict__ dy, float *dx) {
    NLC_LOOP(e, s.maps * s.inner) {
        const float g = __fdiv_rn(dy[e / s.inner], (float)s.inner);
        dx[e] = ACC ? dx[e] + g : g;
    }
}

static int gap_forward(nl_func *f) {
    const gap_state *s = (const gap_state *)f->state;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(float *, y, nlc_out(f, 0));
    if (s->maps == 0) return 0;
    if (nlc_set_device(f->device_id)) return -1;
    k_gap_fwd<<<group_grid(s->maps), NLC_THREADS>>>(*s, x, y);
    NLC_LAUNCHED("global_average_pooling");
    return 0;
}

static int gap_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    const gap_state *s = (const gap_state *)f->state;
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
    const int64_t n = s->maps * s->inner;
    if (n == 0) return 0;
    if (nlc_set_device(f->device_id)) return -1;
    if (accum[0]) k_gap_bwd<true><<<nlc_blocks(n), NLC_THREADS>>>(*s, dy, dx);
    else k_gap_bwd<false><<<nlc_blocks(n), NLC_THREADS>>>(*s, dy, dx);
    NLC_LAUNCHED("global_average_pooling (backward)");
    return 0;
}

/* ---- sum pooling ------------------------------------------------------------------------- */

/* x: (maps, I0, I1, I2) -> y: (maps, O0, O1, O2); thread per output: the float sum over
 * its window (sp_window) in the CPU's order */
__global__ void k_sp_fwd(sp_state st, const float *__restrict__ x, float *y) {
    NLC_LOOP(t, st.maps * st.out_size) {
        const int64_t m = t / st.out_size;
        int64_t r = t - m * st.out_size, o[NL_POOL_SD], lo[NL_POOL_SD], hi[NL_POOL_SD];
        for (int a = NL_POOL_SD - 1; a >= 0; a--) { o[a] = r % st.out[a]; r /= st.out[a]; }
        sp_window(&st, o, lo, hi);
        const float *xm = x + m * st.in_size;
        float s = 0.0f;
        for (int64_t i0 = lo[0]; i0 < hi[0]; i0++)
            for (int64_t i1 = lo[1]; i1 < hi[1]; i1++) {
                const float *row = xm + (i0 * st.in[1] + i1) * st.in[2];
                for (int64_t i2 = lo[2]; i2 < hi[2]; i2++) s += row[i2];
            }
        y[t] = s;
    }
}

/* dy: (maps, O0, O1, O2) -> dx: (maps, I0, I1, I2); thread per input element i: starting
 * from dx (ACC) or 0, adds dy of every output whose window holds i, in row-major output
 * order (the CPU's scatter order). Candidates per axis: o*stride - pad <= i <
 * o*stride - pad + k; each is checked against sp_window. */
template <bool ACC>
__global__ void k_sp_bwd(sp_state st, const float *__restrict__ dy, float *dx) {
    NLC_LOOP(t, st.maps * st.in_size) {
        const int64_t m = t / st.in_size;
        int64_t r = t - m * st.in_size, i[NL_POOL_SD], olo[NL_POOL_SD], ohi[NL_POOL_SD];
        for (int a = NL_POOL_SD - 1; a >= 0; a--) { i[a] = r % st.in[a]; r /= st.in[a]; }
        for (int a = 0; a < NL_POOL_SD; a++) {
            const int64_t lo = i[a] + st.pad[a] - st.k[a];   /* o * stride > lo */
            olo[a] = lo < 0 ? 0 : lo / st.stride[a] + 1;
            ohi[a] = (i[a] + st.pad[a]) / st.stride[a];      /* o * stride <= i + pad */
            if (ohi[a] > st.out[a] - 1) ohi[a] = st.out[a] - 1;
        }
        const float *dym = dy + m * st.out_size;
        float acc = ACC ? dx[t] : 0.0f;
        int64_t o[NL_POOL_SD], wlo[NL_POOL_SD], whi[NL_POOL_SD];
        for (o[0] = olo[0]; o[0] <= ohi[0]; o[0]++)
            for (o[1] = olo[1]; o[1] <= ohi[1]; o[1]++)
                for (o[2] = olo[2]; o[2] <= ohi[2]; o[2]++) {
                    sp_window(&st, o, wlo, whi);
                    bool in = true;
                    for (int a = 0; a < NL_POOL_SD; a++) in = in && wlo[a] <= i[a] && i[a] < whi[a];
                    if (in) acc += dym[(o[0] * st.out[1] + o[1]) * st.out[2] + o[2]];
                }
        dx[t] = acc;
    }
}

static int sp_forward(nl_func *f) {
    const sp_state *st = (const sp_state *)f->state;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(float *, y, nlc_out(f, 0));
    const int64_t n = st->maps * st->out_size;
    if (n == 0) return 0;
    if (nlc_set_device(f->device_id)) return -1;
    k_sp_fwd<<<nlc_blocks(n), NLC_THREADS>>>(*st, x, y);
    NLC_LAUNCHED("sum_pooling");
    return 0;
}

static int sp_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    const sp_state *st = (const sp_state *)f->state;
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
    const int64_t n = st->maps * st->in_size;
    if (n == 0) return 0;
    if (nlc_set_device(f->device_id)) return -1;
    if (accum[0]) k_sp_bwd<true><<<nlc_blocks(n), NLC_THREADS>>>(*st, dy, dx);
    else k_sp_bwd<false><<<nlc_blocks(n), NLC_THREADS>>>(*st, dy, dx);
    NLC_LAUNCHED("sum_pooling (backward)");
    return 0;
}

/* ---- unpooling ------------------------------------------------------------------------------ */

/* x: (maps, I0, I1, I2) -> y: (maps, I0*K0, I1*K1, I2*K2); thread per output:
 * y[..., o] = x[..., o / k] */
__global__ void k_up_fwd(up_state st, const float *__restrict__ x, float *y) {
    const int64_t O1 = st.in[1] * st.k[1], O2 = st.in[2] * st.k[2];
    NLC_LOOP(t, st.maps * st.out_size) {
        const int64_t m = t / st.out_size, r = t - m * st.out_size;
        const int64_t o2 = r % O2, o1 = (r / O2) % O1, o0 = r / (O1 * O2);
        y[t] = x[m * st.in_size + ((o0 / st.k[0]) * st.in[1] + o1 / st.k[1]) * st.in[2] + o2 / st.k[2]];
    }
}

/* dy: (maps, I0*K0, I1*K1, I2*K2) -> dx: (maps, I0, I1, I2); thread per input element:
 * starting from dx (ACC) or 0, adds its kernel-sized block of dy in row-major order (the
 * CPU's order) */
template <bool ACC>
__global__ void k_up_bwd(up_state st, const float *__restrict__ dy, float *dx) {
    const int64_t O1 = st.in[1] * st.k[1], O2 = st.in[2] * st.k[2];
    NLC_LOOP(t, st.maps * st.in_size) {
        const int64_t m = t / st.in_size, r = t - m * st.in_size;
        const int64_t i2 = r % st.in[2], i1 = (r / st.in[2]) % st.in[1], i0 = r / (st.in[1] * st.in[2]);
        const float *g = dy + m * st.out_size;
        float acc = ACC ? dx[t] : 0.0f;
        for (int64_t o0 = i0 * st.k[0]; o0 < (i0 + 1) * st.k[0]; o0++)
            for (int64_t o1 = i1 * st.k[1]; o1 < (i1 + 1) * st.k[1]; o1++) {
                const float *row = g + (o0 * O1 + o1) * O2;
                for (int64_t o2 = i2 * st.k[2]; o2 < (i2 + 1) * st.k[2]; o2++) acc += row[o2];
            }
        dx[t] = acc;
    }
}

static int up_forward(nl_func *f) {
    const up_state *st = (const up_state *)f->state;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(float *, y, nlc_out(f, 0));
    const int64_t n = st->maps * st->out_size;
    if (n == 0) return 0;
    if (nlc_set_device(f->device_id)) return -1;
    k_up_fwd<<<nlc_blocks(n), NLC_THREADS>>>(*st, x, y);
    NLC_LAUNCHED("unpooling");
    return 0;
}

static int up_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    const up_state *st = (const up_state *)f->state;
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
    const int64_t n = st->maps * st->in_size;
    if (n == 0) return 0;
    if (nlc_set_device(f->device_id)) return -1;
    if (accum[0]) k_up_bwd<true><<<nlc_blocks(n), NLC_THREADS>>>(*st, dy, dx);
    else k_up_bwd<false><<<nlc_blocks(n), NLC_THREADS>>>(*st, dy, dx);
    NLC_LAUNCHED("unpooling (backward)");
    return 0;
}

/* ---- registration ---------------------------------------------------------------------------- */

int nlc_register_norm_ext(void) {
    if (nlc_register("layer_normalization", "cuda", tn_forward, tn_backward)) return -1;
    if (nlc_register("instance_normalization", "cuda", tn_forward, tn_backward)) return -1;
    if (nlc_register("group_normalization", "cuda", tn_forward, tn_backward)) return -1;
    if (nlc_register("weight_normalization", "cuda", wn_forward, wn_backward)) return -1;
    if (nlc_register("global_average_pooling", "cuda", gap_forward, gap_backward)) return -1;
    if (nlc_register("sum_pooling", "cuda", sp_forward, sp_backward)) return -1;
    if (nlc_register("unpooling", "cuda", up_forward, up_backward)) return -1;
    return 0;
}
