/*
 * interpolate.cu - the CUDA twin of array_ops.c's interpolate: x resized on 1 to 3
 * spatial axes, linear or nearest, with every coordinate rule the CPU has (align_corners,
 * half_pixel, half_pixel_for_nn, channel_last, scale or output_size).
 *
 * Nothing is planned here: the CPU setup's interp_plan (index_plans.h, read from f->state)
 * holds, per spatial axis and output position, the source indices and the weight; its
 * tables are copied to the device once per node. Each output corner's offset and weight is
 * index_plans.h's nl_interp_corner, which the CPU calls too.
 *   - Forward: one thread per output element sums its corners in the CPU's order.
 *   - Backward: one thread per input element gathers, instead of the CPU's scatter, every
 *     (output, corner) pair that lands on it, in the CPU's order (outputs in row-major
 *     order, corners in order): no atomics, and the float sums are the CPU's. The tables
 *     never decrease along an axis, so the outputs that can reach source index i on an axis
 *     are those whose lower index is i - 1 or i: one range, found by binary search.
 * accum[0] adds into x's gradient, else it is overwritten.
 */
#include "common.cuh"
extern "C" {
#include "index_plans.h"
}

/* What the kernels need: the plan (its table pointers unused), the shapes, and the
 * tables' device copies. */
struct interp_geo {
    interp_plan p;
    int nd;
    int64_t yshape[NL_MAX_NDIM], yst[NL_MAX_NDIM], xshape[NL_MAX_NDIM];
    int64_t ysize, xsize;
    const int64_t *i1, *i2;     /* p.n_tab each */
    const float *w;
};

/* The tables on the device, copied once per node. */
struct interp_dev {
    nlc_buf tabs;               /* i1, i2 (int64s), then w */
    bool ready = false;
};

/* The node's geometry with its tables on the device. 0 or -1. */
static int interp_geometry(nl_func *f, interp_geo *g) {
    const interp_plan *p = (const interp_plan *)f->state;
    const nl_var *x = nl_in(f, 0), *y = f->out[0];
    interp_dev *st = nlc_state<interp_dev>(f);
    if (!st) return -1;
    const int64_t nt = p->n_tab;
    if (st->tabs.p && st->tabs.dev != f->device_id) st->ready = false;
    NLC_PTR(float *, buf, st->tabs.get(5 * nt, f->device_id));
    if (!st->ready) {
        for (int s = 0; s < p->ns; s++)   /* the gather backward relies on it */
            for (int64_t o = p->at[s] + 1; o < p->at[s] + y->shape[p->axis[s]]; o++)
                if (p->i1[o] < p->i1[o - 1])
                    return nl_error("internal error: interpolate's source indices decrease along axis %d",
                                    p->axis[s] + 1);
        if (nlc_set_device(f->device_id)) return -1;
        NLC_CUDA(cudaMemcpy(buf, p->i1, (size_t)nt * sizeof(int64_t), cudaMemcpyHostToDevice));
        NLC_CUDA(cudaMemcpy(buf + 2 * nt, p->i2, (size_t)nt * sizeof(int64_t), cudaMemcpyHostToDevice));
        NLC_CUDA(cudaMemcpy(buf + 4 * nt, p->w, (size_t)nt * sizeof(float), cudaMemcpyHostToDevice));
        st->ready = true;
    }
    g->p = *p;
    g->nd = y->ndim;
    int64_t s = 1;
    for (int d = y->ndim - 1; d >= 0; d--) {
        g->yshape[d] = y->shape[d];
        g->xshape[d] = x->shape[d];
        g->yst[d] = s;
        s *= y->shape[d];
    }
    g->ysize = y->size;
    g->xsize = x->size;
    g->i1 = (const int64_t *)(void *)buf;
    g->i2 = (const int64_t *)(void *)(buf + 2 * nt);
    g->w = buf + 4 * nt;
    return 0;
}

/* x: (..., I...) -> y: (..., O...); thread per output j: y = sum over its corners of
 * weight * x, in corner order (products and sums rounded apart, as on the CPU) */
__global__ void k_interp_fwd(interp_geo g, const float *__restrict__ x, float *y) {
    NLC_LOOP(j, g.ysize) {
        int64_t idx[NL_MAX_NDIM], r = j;
        for (int d = g.nd - 1; d >= 0; d--) { idx[d] = r % g.yshape[d]; r /= g.yshape[d]; }
        bool spatial[NL_MAX_NDIM];
        for (int d = 0; d < g.nd; d++) spatial[d] = false;
        int64_t o[IP_MAX_SPATIAL];
        for (int s = 0; s < g.p.ns; s++) { spatial[g.p.axis[s]] = true; o[s] = idx[g.p.axis[s]]; }
        int64_t base = 0;
        for (int d = 0; d < g.nd; d++) if (!spatial[d]) base += idx[d] * g.p.xst[d];
        const int corners = g.p.nearest ? 1 : 1 << g.p.ns;
        float acc = 0.0f;
        for (int c = 0; c < corners; c++) {
            int64_t off = base;
            const float wgt = nl_interp_corner(&g.p, g.i1, g.i2, g.w, o, c, &off);
            acc = __fadd_rn(acc, __fmul_rn(wgt, x[off]));
        }
        y[j] = acc;
    }
}

/* the first k in [0, n) with t[k] > v (n when none); t non-decreasing */
__device__ __forceinline__ int64_t upper_at(const int64_t *t, int64_t n, int64_t v) {
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (t[mid] <= v) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* dy: (..., O...) -> dx: (..., I...); thread per input element t: starting from dx (ACC)
 * or 0, adds weight * dy of every (output, corner) pair whose corner is t, outputs in
 * row-major order and corners in order (the CPU's scatter order). Candidates on spatial
 * axis s (source index i): the outputs whose lower index is i - 1 or i. */
template <bool ACC>
__global__ void k_interp_bwd(interp_geo g, const float *__restrict__ dy, float *dx) {
    NLC_LOOP(t, g.xsize) {
        int64_t idx[NL_MAX_NDIM], r = t;
        for (int d = g.nd - 1; d >= 0; d--) { idx[d] = r % g.xshape[d]; r /= g.xshape[d]; }
        int64_t lo[IP_MAX_SPATIAL] = {0, 0, 0}, hi[IP_MAX_SPATIAL] = {1, 1, 1};
        int64_t xbase = t, ybase = 0;
        for (int s = 0; s < g.p.ns; s++) {
            const int ax = g.p.axis[s];
            const int64_t i = idx[ax], n = g.yshape[ax], *t1 = g.i1 + g.p.at[s];
            lo[s] = upper_at(t1, n, i - (g.p.nearest ? 1 : 2));
            hi[s] = upper_at(t1, n, i);
            xbase -= i * g.p.xst[ax];
            idx[ax] = 0;
        }
        for (int d = 0; d < g.nd; d++) ybase += idx[d] * g.yst[d];
        const int corners = g.p.nearest ? 1 : 1 << g.p.ns;
        float acc = ACC ? dx[t] : 0.0f;
        int64_t o[IP_MAX_SPATIAL];
        for (o[0] = lo[0]; o[0] < hi[0]; o[0]++)
            for (o[1] = lo[1]; o[1] < hi[1]; o[1]++)
                for (o[2] = lo[2]; o[2] < hi[2]; o[2]++) {
                    int64_t j = ybase;
                    for (int s = 0; s < g.p.ns; s++) j += o[s] * g.yst[g.p.axis[s]];
                    for (int c = 0; c < corners; c++) {
                        int64_t off = xbase;
                        const float wgt = nl_interp_corner(&g.p, g.i1, g.i2, g.w, o, c, &off);
                        if (off == t) acc = __fadd_rn(acc, __fmul_rn(wgt, dy[j]));
                    }
                }
        dx[t] = acc;
    }
}

static int interp_forward(nl_func *f) {
    interp_geo g;
    if (interp_geometry(f, &g)) return -1;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(float *, y, nlc_out(f, 0));
    if (g.ysize == 0) return 0;
    if (nlc_set_device(f->device_id)) return -1;
    k_interp_fwd<<<nlc_blocks(g.ysize), NLC_THREADS>>>(g, x, y);
    NLC_LAUNCHED("interpolate");
    return 0;
}

static int interp_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    interp_geo g;
    if (interp_geometry(f, &g)) return -1;
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
    if (g.xsize == 0) return 0;
    if (g.ysize == 0) return nlc_clear_grad(f, dx, 0, accum[0]);
    if (nlc_set_device(f->device_id)) return -1;
    if (accum[0]) k_interp_bwd<true><<<nlc_blocks(g.xsize), NLC_THREADS>>>(g, dy, dx);
    else k_interp_bwd<false><<<nlc_blocks(g.xsize), NLC_THREADS>>>(g, dy, dx);
    NLC_LAUNCHED("interpolate (backward)");
    return 0;
}

int nlc_register_interpolate(void) {
    return nlc_register("interpolate", "cuda", interp_forward, interp_backward);
}
