/*
 * clip_grad.cu - the CUDA twins of normalization_ext.c's clip_grad_by_value and
 * clip_grad_by_norm: identity forwards (a device-to-device copy) whose backwards clip the
 * gradient.
 *   clip_grad_by_value  one thread per element: dx = dy clamped to [min, max] (nl_cgv_dx);
 *                       min and max get zero gradients, as on the CPU.
 *   clip_grad_by_norm   the CPU setup's norm_state (norm_ext_plan.h, f->state), whose
 *                       statistic map holds the kept axes (none: one statistic): one block
 *                       per statistic sums dy^2 in double over tensor_norm.cuh's walk and
 *                       turns the sum into clip_norm / sqrt(sum) (nl_cgn_scale; 0 for a
 *                       zero sum), then one thread per element: dx = dy * that (nl_cgn_dx).
 * The math is norm_ext_plan.h's, which the CPU calls too; the sums' order differs (block
 * reductions). accum[0] adds into x's gradient, else it is overwritten.
 */
#include "tensor_norm.cuh"
extern "C" {
#include "labels.h"   /* nl_no_grad_input */
}

/* ---- clip_grad_by_value ------------------------------------------------------------------ */

/* dy, lo, hi, dx: n elements; dx = clamp(dy, lo, hi), added when ACC */
template <bool ACC>
__global__ void k_cgv_bwd(int64_t n, const float *__restrict__ dy, const float *__restrict__ lo,
                          const float *__restrict__ hi, float *dx) {
    NLC_LOOP(i, n) {
        const float v = nl_cgv_dx(dy[i], lo[i], hi[i]);
        dx[i] = ACC ? dx[i] + v : v;
    }
}

static int cgv_backward(nl_func *f, const bool *prop, const bool *accum) {
    for (int i = 1; i <= 2; i++) nl_no_grad_input(f, i, prop, accum);   /* min, max */
    if (!prop[0]) return 0;
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    NLC_PTR(const float *, lo, nlc_in(f, 1));
    NLC_PTR(const float *, hi, nlc_in(f, 2));
    NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
    const int64_t n = nl_in(f, 0)->size;
    if (n == 0) return 0;
    if (nlc_set_device(f->device_id)) return -1;
    if (accum[0]) k_cgv_bwd<true><<<nlc_blocks(n), NLC_THREADS>>>(n, dy, lo, hi, dx);
    else k_cgv_bwd<false><<<nlc_blocks(n), NLC_THREADS>>>(n, dy, lo, hi, dx);
    NLC_LAUNCHED("clip_grad_by_value (backward)");
    return 0;
}

/* ---- clip_grad_by_norm ------------------------------------------------------------------- */

/* dy: the map's x; w: the statistic walk; block per statistic p: scale[p] =
 * clip / sqrt(sum dy^2) over its elements (0 for a zero sum), the sum in double */
__global__ void k_cgn_scale(tn_walk w, const float *__restrict__ dy, double clip, double *scale) {
    for (int64_t p = blockIdx.x; p < w.groups; p += gridDim.x) {
        double s = 0;
        for (int64_t j = threadIdx.x; j < w.count; j += blockDim.x) {
            const double g = dy[walk_at(w, p, j)];
            s += __dmul_rn(g, g);
        }
        s = block_sum_d(s);
        if (threadIdx.x == 0) scale[p] = nl_cgn_scale(s, clip);
    }
}

/* dy, dx: m.size elements; scale: (nstat); dx = dy * scale[its statistic] in double, added
 * when ACC */
template <bool ACC>
__global__ void k_cgn_dx(tn_map m, const float *__restrict__ dy, const double *__restrict__ scale, float *dx) {
    NLC_LOOP(e, m.size) {
        int64_t off[M_N];
        tn_elem(&m, e, off);
        const float v = nl_cgn_dx(dy[e], scale[off[M_STAT]]);
        dx[e] = ACC ? dx[e] + v : v;
    }
}

static int cgn_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    const norm_state *s = (const norm_state *)f->state;
    const tn_map *m = &s->m;
    const int dev = f->device_id;
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
    if (m->size == 0) return 0;
    tn_walk w;
    if (tn_walk_of(m, M_STAT, m->nstat, &w)) return -1;
    nlc_buf sbuf;
    NLC_PTR(float *, sf, sbuf.get(2 * m->nstat, dev));
    double *scale = (double *)(void *)sf;
    if (nlc_set_device(dev)) return -1;
    k_cgn_scale<<<group_grid(m->nstat), NLC_THREADS>>>(w, dy, nl_arg_float(f, CGN_CLIP_NORM), scale);
    NLC_LAUNCHED("clip_grad_by_norm (norms)");
    if (accum[0]) k_cgn_dx<true><<<nlc_blocks(m->size), NLC_THREADS>>>(*m, dy, scale, dx);
    else k_cgn_dx<false><<<nlc_blocks(m->size), NLC_THREADS>>>(*m, dy, scale, dx);
    NLC_LAUNCHED("clip_grad_by_norm (backward)");
    return 0;
}

/* ---- registration ------------------------------------------------------------------------- */

int nlc_register_clip_grad(void) {
    if (nlc_register("clip_grad_by_value", "cuda", nlc_copy_forward, cgv_backward)) return -1;
    if (nlc_register("clip_grad_by_norm", "cuda", nlc_copy_forward, cgn_backward)) return -1;
    return 0;
}
