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
 * Not here (the CPU runs them): fused_batch_normalization and the clip_grad_* functions.
 */
#include "common.cuh"
extern "C" {
#include "norm_ext_plan.h"
#include "pooling_ext_plan.h"
}

/* ---- shared helpers ------------------------------------------------------------------ */

/* Sum of v over the block (blockDim.x a multiple of 32, at most 1024), in double; the
 * result is returned to every thread. Every thread of the block must call it. */
__device__ __forceinline__ double block_sum_d(double v) {
    __shared__ double sh[32];
    __shared__ double total;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    if (warp == 0) {
        const int nw = (blockDim.x + 31) >> 5;
        v = lane < nw ? sh[lane] : 0.0;
        for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
        if (lane == 0) total = v;
    }
    __syncthreads();
    v = total;
    __syncthreads();   /* sh and total may be reused by a following call */
    return v;
}

/* blocks for one block per group (the kernels loop over the rest) */
static unsigned group_grid(int64_t groups) {
    if (groups < 1) return 1;
    return (unsigned)(groups > (1 << 20) ? (1 << 20) : groups);
}

/* ---- layer / instance / group normalization ------------------------------------------- */

/* The groups of one map of a tn_map (the statistic, beta or gamma array): the merged axes
 * with a nonzero stride in that map pick the group (kept), the others are walked inside it
 * (reduced); both lists in axis order with x's row-major strides. The map's strides are
 * row-major over its own shape, so group p is the map's entry p. */
struct tn_walk {
    int nk, nr;
    int64_t kshape[NL_TN_MAXD], kst[NL_TN_MAXD];
    int64_t rshape[NL_TN_MAXD], rst[NL_TN_MAXD];
    int64_t groups, count;   /* entries of the map, elements of x per entry */
};

/* Builds map k's walk; checks that it covers x once with `entries` groups. */
static int tn_walk_of(const tn_map *m, int k, int64_t entries, tn_walk *w) {
    int64_t xst[NL_TN_MAXD], s = 1;
    for (int d = m->nd - 1; d >= 0; d--) { xst[d] = s; s *= m->shape[d]; }
    w->nk = w->nr = 0;
    w->groups = w->count = 1;
    for (int d = 0; d < m->nd; d++) {
        if (m->st[k][d] != 0) {
            w->kshape[w->nk] = m->shape[d];
            w->kst[w->nk++] = xst[d];
            w->groups *= m->shape[d];
        } else {
            w->rshape[w->nr] = m->shape[d];
            w->rst[w->nr++] = xst[d];
            w->count *= m->shape[d];
        }
    }
    if (w->groups != entries || w->groups * w->count != m->size)
        return nl_error("internal error: normalization map %d has %lld groups of %lld (expected %lld covering %lld)",
                        k, (long long)w->groups, (long long)w->count, (long long)entries, (long long)m->size);
    return 0;
}

/* offset in x of the j-th element (row-major over the given axes) */
__device__ __forceinline__ int64_t axes_off(int n, const int64_t *shape, const int64_t *st, int64_t j) {
    int64_t off = 0;
    for (int a = n - 1; a >= 0; a--) {
        const int64_t q = j / shape[a];
        off += (j - q * shape[a]) * st[a];
        j = q;
    }
    return off;
}
/* element j of group p of a walk: its (row-major) index in x */
__device__ __forceinline__ int64_t walk_at(const tn_walk &w, int64_t p, int64_t j) {
    return axes_off(w.nk, w.kshape, w.kst, p) + axes_off(w.nr, w.rshape, w.rst, j);
}

/* x: the map's x; w: the statistic walk (groups = nstat); block per statistic p:
 * mean[p] = sum x / n, rstd[p] = 1/sqrt(sum (x - mean)^2 / n + eps), sums in double */
__global__ void k_tn_stats(tn_walk w, const float *__restrict__ x, double eps, float *mean, float *rstd) {
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
            mean[p] = (float)mu;
            rstd[p] = (float)(1.0 / sqrt(q / cnt + eps));
        }
    }
}

/* x, y: m.size elements; mean, rstd: (nstat); beta, gamma (NULL = absent): their arrays;
 * y = (x - mean) * rstd * gamma + beta through the map's offsets */
__global__ void k_tn_fwd(tn_map m, const float *__restrict__ x, const float *__restrict__ mean,
                         const float *__restrict__ rstd, const float *__restrict__ beta,
                         const float *__restrict__ gamma, float *y) {
    NLC_LOOP(e, m.size) {
        int64_t off[M_N];
        tn_elem(&m, e, off);
        const int64_t s = off[M_STAT];
        y[e] = nl_tn_affine(x[e], mean[s], rstd[s], gamma != nullptr, gamma ? gamma[off[M_GAMMA]] : 1.0f,
                            beta != nullptr, beta ? beta[off[M_BETA]] : 0.0f);
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
 * xhat * b/n) (added when ACC) */
template <bool ACC>
__global__ void k_tn_dx(tn_map m, const float *__restrict__ x, const float *__restrict__ dy,
                        const float *__restrict__ mean, const float *__restrict__ rstd,
                        const float *__restrict__ gamma, const double *__restrict__ a,
                        const double *__restrict__ b, double inv_n, float *dx) {
    NLC_LOOP(e, m.size) {
        int64_t off[M_N];
        tn_elem(&m, e, off);
        const int64_t s = off[M_STAT];
        const float g = gamma ? gamma[off[M_GAMMA]] : 1.0f;
        const float v = nl_tn_dx(x[e], mean[s], rstd[s], dy[e], g, a[s], b[s], inv_n);
        dx[e] = ACC ? dx[e] + v : v;
    }
}

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
    tn_walk w;
    if (tn_walk_of(m, M_STAT, ns, &w)) return -1;
    if (nlc_set_device(dev)) return -1;
    k_tn_stats<<<group_grid(ns), NLC_THREADS>>>(w, x, s->eps, ms, ms + ns);
    NLC_LAUNCHED("normalization (statistics)");
    k_tn_fwd<<<nlc_blocks(m->size), NLC_THREADS>>>(*m, x, ms, ms + ns, beta, gamma, y);
    NLC_LAUNCHED("normalization");
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
    tn_walk w;
    if (tn_walk_of(m, GAMMA ? M_GAMMA : M_BETA, nl_in(f, i)->size, &w)) return -1;
    if (nlc_set_device(f->device_id)) return -1;
    const unsigned b = group_grid(w.groups);
    if (accum) k_tn_param<GAMMA, true><<<b, NLC_THREADS>>>(w, *m, x, dy, mean, rstd, g);
    else k_tn_param<GAMMA, false><<<b, NLC_THREADS>>>(w, *m, x, dy, mean, rstd, g);
    NLC_LAUNCHED(GAMMA ? "normalization (gamma gradient)" : "normalization (beta gradient)");
    return 0;
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
    tn_walk w;
    if (tn_walk_of(m, M_STAT, ns, &w)) return -1;
    nlc_buf abuf;
    NLC_PTR(float *, abf, abuf.get(4 * ns, dev));
    double *a = (double *)(void *)abf, *b = a + ns;
    if (nlc_set_device(dev)) return -1;
    k_tn_ab<<<group_grid(ns), NLC_THREADS>>>(w, *m, x, dy, mean, rstd, gamma, a, b);
    NLC_LAUNCHED("normalization (backward sums)");
    const double inv_n = m->count > 0 ? 1.0 / (double)m->count : 0.0;
    const unsigned nb = nlc_blocks(m->size);
    if (accum[IN_X]) k_tn_dx<true><<<nb, NLC_THREADS>>>(*m, x, dy, mean, rstd, gamma, a, b, inv_n, dx);
    else k_tn_dx<false><<<nb, NLC_THREADS>>>(*m, x, dy, mean, rstd, gamma, a, b, inv_n, dx);
    NLC_LAUNCHED("normalization (backward)");
    return 0;
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
