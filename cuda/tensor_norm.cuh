/*
 * tensor_norm.cuh - the "tensor norm" of normalization_ext.c on the device, shared by
 * norm_ext.cu (layer/instance/group normalization, which defines the kernels),
 * fused_bn.cu (fused_batch_normalization: the same kernels through the launchers below)
 * and clip_grad.cu (clip_grad_by_norm: per-statistic sums over the same walk).
 *
 * The geometry is the CPU setup's tn_map (norm_ext_plan.h, read from f->state): x as
 * a merged strided view in which each element finds its statistic and its beta/gamma
 * entries through strides. A tn_walk lists, for one of those maps, the axes that pick an
 * entry (kept) and the axes walked inside it (reduced), so a block can reduce one entry's
 * elements. Sums are in double as on the CPU; their order differs (block reductions).
 */
#ifndef NNLUA_CUDA_TENSOR_NORM_CUH
#define NNLUA_CUDA_TENSOR_NORM_CUH
#include "common.cuh"
extern "C" {
#include "norm_ext_plan.h"
}

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
static inline unsigned group_grid(int64_t groups) {
    if (groups < 1) return 1;
    return (unsigned)(groups > (1 << 20) ? (1 << 20) : groups);
}

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
static inline int tn_walk_of(const tn_map *m, int k, int64_t entries, tn_walk *w) {
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

/* ---- norm_ext.cu's tensor-norm kernels as launchers (device pointers; m->size > 0;
 *      0, or -1 with an error) ------------------------------------------------------------ */

/* mean, rstd (nstat each) = the batch statistics of x; var (NULL: not wanted) = the
 * biased variances (nstat doubles) */
int nlc_tn_stats(int dev, const tn_map *m, const float *x, double eps, float *mean, float *rstd, double *var);
/* y = (x - mean) * rstd * gamma + beta (NULL: absent), then with relu: relu(y + z) (z NULL:
 * absent) as fused batch norm does */
int nlc_tn_apply(int dev, const tn_map *m, const float *x, const float *mean, const float *rstd,
                 const float *beta, const float *gamma, const float *z, bool relu, float *y);
/* a, b (nstat doubles each) = sum dy*g and sum dy*g*xhat per statistic (g = gamma's
 * entry, 1 without gamma) */
int nlc_tn_sums(int dev, const tn_map *m, const float *x, const float *dy, const float *mean, const float *rstd,
                const float *gamma, double *a, double *b);
/* grad (entries floats) = beta's (gamma_grad false: sum dy) or gamma's (true: sum dy*xhat)
 * gradient, overwritten or added (accum) */
int nlc_tn_param_grad(int dev, const tn_map *m, bool gamma_grad, int64_t entries, const float *x, const float *dy,
                      const float *mean, const float *rstd, float *grad, bool accum);
/* dx (overwritten or added) = with batch statistics rstd * (dy*g - a/n - xhat * b/n) (a, b
 * from nlc_tn_sums), else rstd * dy * g */
int nlc_tn_dx(int dev, const tn_map *m, bool batch, const float *x, const float *dy, const float *mean,
              const float *rstd, const float *gamma, const double *a, const double *b, float *dx, bool accum);

#endif
