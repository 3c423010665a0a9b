/*
 * reduce_ext.cu - the CUDA twins of reduction.c's max, min, prod, norm (one thread per
 * output element, walking its reduced group) and cumsum, cumprod (one thread per line
 * along the axis), with every argument variant (axes, keepdims, with_index, only_index,
 * p, exclusive, reverse).
 *
 * Nothing is planned here: the CPU setup builds the plans (reduce_plan.h's group_plan and
 * cum_plan, read from f->state) and the CPU specs test them; the element offsets
 * (group_offset, cum_at) and norm's gradient term are the same host/device functions the
 * CPU code calls. Each thread repeats the CPU's loop for its group or line: the same
 * comparisons (first winner on ties, NaN handling), double accumulation in the same order,
 * products kept apart from sums (__dmul_rn: no fused multiply-add the CPU would not do).
 * Groups and lines are disjoint, so no two threads write the same element.
 */
#include "common.cuh"
extern "C" {
#include "reduce_plan.h"
}

/* ---- max, min ---------------------------------------------------------------------- */

/* The winner of each group, found by forward for backward: its offset in x. */
struct maxmin_state {
    nlc_buf at;          /* ysize int64 offsets (two floats each) */
    int64_t n = -1;      /* groups the last forward found, -1 before any */
};

/* x: any shape; y, yi (either may be NULL): (ysize) = each group's extreme (the first on
 * ties) and its 1-based position r + 1 in the group, as a float; at: (ysize) = the
 * winner's offset in x */
template <bool MIN>
__global__ void k_maxmin(group_axes kept, group_axes red, int64_t ysize, int64_t R, const float *__restrict__ x,
                         float *y, float *yi, int64_t *at) {
    NLC_LOOP(j, ysize) {
        const int64_t base = group_offset(&kept, j);
        const float *g = x + base;
        float best = g[group_offset(&red, 0)];
        int64_t w = 0;
        for (int64_t r = 1; r < R; r++) {
            const float v = g[group_offset(&red, r)];
            if (MIN ? v < best : v > best) { best = v; w = r; }
        }
        at[j] = base + group_offset(&red, w);
        if (y) y[j] = best;
        if (yi) yi[j] = (float)(w + 1);
    }
}

/* dy: (ysize); dx: x's shape (cleared, or accumulating) += dy[j] at each winner at[j] */
__global__ void k_maxmin_bwd(int64_t ysize, const int64_t *__restrict__ at, const float *__restrict__ dy, float *dx) {
    NLC_LOOP(j, ysize) dx[at[j]] += dy[j];
}

static int maxmin_forward(nl_func *f) {
    const group_plan *p = (const group_plan *)f->state;
    const int dev = f->device_id;
    maxmin_state *st = nlc_state<maxmin_state>(f);
    if (!st) return -1;
    st->n = -1;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    float *yv = nullptr, *yi = nullptr;
    if (p->n_val >= 0) { NLC_PTR(float *, t, nlc_out(f, p->n_val)); yv = t; }
    if (p->n_idx >= 0) { NLC_PTR(float *, t, nlc_out(f, p->n_idx)); yi = t; }
    if (p->ysize > 0) {
        NLC_PTR(float *, buf, st->at.get(2 * p->ysize, dev));
        int64_t *at = (int64_t *)(void *)buf;
        if (nlc_set_device(dev)) return -1;
        const unsigned b = nlc_blocks(p->ysize);
        if (p->is_min) k_maxmin<true><<<b, NLC_THREADS>>>(p->kept, p->red, p->ysize, p->R, x, yv, yi, at);
        else k_maxmin<false><<<b, NLC_THREADS>>>(p->kept, p->red, p->ysize, p->R, x, yv, yi, at);
        NLC_LAUNCHED(p->is_min ? "min" : "max");
    }
    st->n = p->ysize;
    return 0;
}

/* dx = dy at each winner, zero elsewhere; only_index: indices carry no gradient (zero) */
static int maxmin_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    const group_plan *p = (const group_plan *)f->state;
    const int dev = f->device_id;
    NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
    if (!accum[0] && nlc_fill(dev, dx, 0.0f, nl_in(f, 0)->size)) return -1;
    if (p->n_val < 0 || p->ysize == 0) return 0;
    maxmin_state *st = nlc_state<maxmin_state>(f);
    if (!st) return -1;
    if (st->n != p->ysize || !st->at.p) return nl_error("forward must run before backward");
    NLC_PTR(const float *, dy, nlc_out_grad(f, p->n_val));
    if (nlc_set_device(dev)) return -1;
    k_maxmin_bwd<<<nlc_blocks(p->ysize), NLC_THREADS>>>(p->ysize, (const int64_t *)(void *)st->at.p, dy, dx);
    NLC_LAUNCHED(p->is_min ? "min (backward)" : "max (backward)");
    return 0;
}

/* ---- prod ---------------------------------------------------------------------------- */

/* x: any shape; y: (ysize) = the product of each group, in double (1 for an empty group) */
__global__ void k_prod_fwd(group_axes kept, group_axes red, int64_t ysize, int64_t R, const float *__restrict__ x,
                           float *y) {
    NLC_LOOP(j, ysize) {
        const float *g = x + group_offset(&kept, j);
        double s = 1;
        for (int64_t r = 0; r < R; r++) s = __dmul_rn(s, g[group_offset(&red, r)]);
        y[j] = (float)s;
    }
}

/* dy: (ysize); dx: x's shape = dy * the product of the group's other members: prefix
 * products (pre: a double per element of x, at that element's offset) times suffix
 * products, so zeros in x are exact */
template <bool ACC>
__global__ void k_prod_bwd(group_axes kept, group_axes red, int64_t ysize, int64_t R, const float *__restrict__ x,
                           const float *__restrict__ dy, float *dx, double *pre) {
    NLC_LOOP(j, ysize) {
        const int64_t base = group_offset(&kept, j);
        double acc = 1;
        for (int64_t r = 0; r < R; r++) {
            const int64_t o = base + group_offset(&red, r);
            pre[o] = acc;
            acc = __dmul_rn(acc, x[o]);
        }
        double suf = dy[j];
        for (int64_t r = R - 1; r >= 0; r--) {
            const int64_t o = base + group_offset(&red, r);
            const float v = (float)__dmul_rn(pre[o], suf);
            dx[o] = ACC ? dx[o] + v : v;
            suf = __dmul_rn(suf, x[o]);
        }
    }
}

static int prod_forward(nl_func *f) {
    const group_plan *p = (const group_plan *)f->state;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(float *, y, nlc_out(f, 0));
    if (p->ysize == 0) return 0;
    if (nlc_set_device(f->device_id)) return -1;
    k_prod_fwd<<<nlc_blocks(p->ysize), NLC_THREADS>>>(p->kept, p->red, p->ysize, p->R, x, y);
    NLC_LAUNCHED("prod");
    return 0;
}

static int prod_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    const group_plan *p = (const group_plan *)f->state;
    const int dev = f->device_id;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
    const int64_t xsize = nl_in(f, 0)->size;
    if (xsize == 0 || p->ysize == 0) return 0;
    nlc_buf scratch;
    NLC_PTR(float *, ws, scratch.get(2 * xsize, dev));
    double *pre = (double *)(void *)ws;
    if (nlc_set_device(dev)) return -1;
    const unsigned b = nlc_blocks(p->ysize);
    if (accum[0]) k_prod_bwd<true><<<b, NLC_THREADS>>>(p->kept, p->red, p->ysize, p->R, x, dy, dx, pre);
    else k_prod_bwd<false><<<b, NLC_THREADS>>>(p->kept, p->red, p->ysize, p->R, x, dy, dx, pre);
    NLC_LAUNCHED("prod (backward)");
    return 0;
}

/* ---- norm ---------------------------------------------------------------------------- */

/* x: any shape; y: (ysize) = (sum |x|^p)^(1/p) per group, in double */
__global__ void k_norm_fwd(group_axes kept, group_axes red, int64_t ysize, int64_t R, double pv,
                           const float *__restrict__ x, float *y) {
    NLC_LOOP(j, ysize) {
        const float *g = x + group_offset(&kept, j);
        double s = 0;
        if (pv == 2) {
            for (int64_t r = 0; r < R; r++) { const double v = g[group_offset(&red, r)]; s += __dmul_rn(v, v); }
            y[j] = (float)sqrt(s);
        } else if (pv == 1) {
            for (int64_t r = 0; r < R; r++) s += fabs((double)g[group_offset(&red, r)]);
            y[j] = (float)s;
        } else {
            for (int64_t r = 0; r < R; r++) s += pow(fabs((double)g[group_offset(&red, r)]), pv);
            y[j] = (float)pow(s, 1 / pv);
        }
    }
}

/* x: any shape; y, dy: (ysize); dx: x's shape = dy * sign(x) |x|^(p-1) / y^(p-1)
 * (0 where y is not > 0 and where x = 0) */
template <bool ACC>
__global__ void k_norm_bwd(group_axes kept, group_axes red, int64_t ysize, int64_t R, double pv,
                           const float *__restrict__ x, const float *__restrict__ y, const float *__restrict__ dy,
                           float *dx) {
    NLC_LOOP(j, ysize) {
        const int64_t base = group_offset(&kept, j);
        const double yj = y[j];
        const double scale = yj > 0 ? dy[j] / pow(yj, pv - 1) : 0;
        for (int64_t r = 0; r < R; r++) {
            const int64_t o = base + group_offset(&red, r);
            const float v = (float)__dmul_rn(scale, norm_grad_term(x[o], pv));
            dx[o] = ACC ? dx[o] + v : v;
        }
    }
}

static int norm_forward(nl_func *f) {
    const group_plan *p = (const group_plan *)f->state;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(float *, y, nlc_out(f, 0));
    if (p->ysize == 0) return 0;
    if (nlc_set_device(f->device_id)) return -1;
    k_norm_fwd<<<nlc_blocks(p->ysize), NLC_THREADS>>>(p->kept, p->red, p->ysize, p->R, p->p, x, y);
    NLC_LAUNCHED("norm");
    return 0;
}

static int norm_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    const group_plan *p = (const group_plan *)f->state;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(const float *, y, nlc_out_r(f, 0));
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
    if (p->ysize == 0 || p->R == 0) return 0;
    if (nlc_set_device(f->device_id)) return -1;
    const unsigned b = nlc_blocks(p->ysize);
    if (accum[0]) k_norm_bwd<true><<<b, NLC_THREADS>>>(p->kept, p->red, p->ysize, p->R, p->p, x, y, dy, dx);
    else k_norm_bwd<false><<<b, NLC_THREADS>>>(p->kept, p->red, p->ysize, p->R, p->p, x, y, dy, dx);
    NLC_LAUNCHED("norm (backward)");
    return 0;
}

/* ---- cumsum, cumprod ------------------------------------------------------------------- */

/* x, y: (A, N, B); thread k = (a, b) scans its line in scan order (cum_at): y = the
 * running sum (product) in double; exclusive leaves the current element out */
template <bool PROD>
__global__ void k_cum_fwd(cum_plan p, const float *__restrict__ x, float *y) {
    NLC_LOOP(k, p.A * p.B) {
        const int64_t a = k / p.B, b = k - a * p.B;
        double acc = PROD ? 1 : 0;
        for (int64_t i = 0; i < p.N; i++) {
            const int64_t o = cum_at(&p, a, b, i);
            if (p.exclusive) { y[o] = (float)acc; acc = PROD ? __dmul_rn(acc, x[o]) : acc + x[o]; }
            else { acc = PROD ? __dmul_rn(acc, x[o]) : acc + x[o]; y[o] = (float)acc; }
        }
    }
}

/* dy, dx: (A, N, B); per line dx = the running sum of dy taken against the scan order */
template <bool ACC>
__global__ void k_cumsum_bwd(cum_plan p, const float *__restrict__ dy, float *dx) {
    NLC_LOOP(k, p.A * p.B) {
        const int64_t a = k / p.B, b = k - a * p.B;
        double acc = 0;
        for (int64_t i = p.N - 1; i >= 0; i--) {
            const int64_t o = cum_at(&p, a, b, i);
            double v;
            if (p.exclusive) { v = acc; acc += dy[o]; }
            else { acc += dy[o]; v = acc; }
            dx[o] = ACC ? dx[o] + (float)v : (float)v;
        }
    }
}

/* x, dy, dx: (A, N, B); per line, in scan order, dx_i = P_i * S_i with P_i the product of
 * x before i and S_i = dy_i + x_{i+1} S_{i+1} (inclusive) or dy_{i+1} + x_{i+1} S_{i+1}
 * (exclusive), S kept in S (a double per element of x, at that element's offset) */
template <bool ACC>
__global__ void k_cumprod_bwd(cum_plan p, const float *__restrict__ x, const float *__restrict__ dy, float *dx,
                              double *S) {
    NLC_LOOP(k, p.A * p.B) {
        const int64_t a = k / p.B, b = k - a * p.B, N = p.N;
        double s = 0;
        for (int64_t i = N - 1; i >= 0; i--) {
            if (i == N - 1) s = p.exclusive ? 0 : dy[cum_at(&p, a, b, i)];
            else {
                const double xn = x[cum_at(&p, a, b, i + 1)];
                s = (p.exclusive ? dy[cum_at(&p, a, b, i + 1)] : dy[cum_at(&p, a, b, i)]) + __dmul_rn(xn, s);
            }
            S[cum_at(&p, a, b, i)] = s;
        }
        double pre = 1;
        for (int64_t i = 0; i < N; i++) {
            const int64_t o = cum_at(&p, a, b, i);
            const float v = (float)__dmul_rn(pre, S[o]);
            dx[o] = ACC ? dx[o] + v : v;
            pre = __dmul_rn(pre, x[o]);
        }
    }
}

static int cum_forward_common(nl_func *f, bool prod) {
    const cum_plan *p = (const cum_plan *)f->state;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(float *, y, nlc_out(f, 0));
    const int64_t lines = p->A * p->B;
    if (lines == 0 || p->N == 0) return 0;
    if (nlc_set_device(f->device_id)) return -1;
    if (prod) k_cum_fwd<true><<<nlc_blocks(lines), NLC_THREADS>>>(*p, x, y);
    else k_cum_fwd<false><<<nlc_blocks(lines), NLC_THREADS>>>(*p, x, y);
    NLC_LAUNCHED(prod ? "cumprod" : "cumsum");
    return 0;
}
static int cumsum_forward(nl_func *f) { return cum_forward_common(f, false); }
static int cumprod_forward(nl_func *f) { return cum_forward_common(f, true); }

static int cumsum_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    const cum_plan *p = (const cum_plan *)f->state;
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
    const int64_t lines = p->A * p->B;
    if (lines == 0 || p->N == 0) return 0;
    if (nlc_set_device(f->device_id)) return -1;
    if (accum[0]) k_cumsum_bwd<true><<<nlc_blocks(lines), NLC_THREADS>>>(*p, dy, dx);
    else k_cumsum_bwd<false><<<nlc_blocks(lines), NLC_THREADS>>>(*p, dy, dx);
    NLC_LAUNCHED("cumsum (backward)");
    return 0;
}

static int cumprod_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    const cum_plan *p = (const cum_plan *)f->state;
    const int dev = f->device_id;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
    const int64_t lines = p->A * p->B;
    if (lines == 0 || p->N == 0) return 0;
    nlc_buf scratch;
    NLC_PTR(float *, ws, scratch.get(2 * lines * p->N, dev));
    double *S = (double *)(void *)ws;
    if (nlc_set_device(dev)) return -1;
    if (accum[0]) k_cumprod_bwd<true><<<nlc_blocks(lines), NLC_THREADS>>>(*p, x, dy, dx, S);
    else k_cumprod_bwd<false><<<nlc_blocks(lines), NLC_THREADS>>>(*p, x, dy, dx, S);
    NLC_LAUNCHED("cumprod (backward)");
    return 0;
}

/* ---- registration ------------------------------------------------------------------------ */

int nlc_register_reductions(void) {
    if (nlc_register("max", "cuda", maxmin_forward, maxmin_backward)) return -1;
    if (nlc_register("min", "cuda", maxmin_forward, maxmin_backward)) return -1;
    if (nlc_register("prod", "cuda", prod_forward, prod_backward)) return -1;
    if (nlc_register("norm", "cuda", norm_forward, norm_backward)) return -1;
    if (nlc_register("cumsum", "cuda", cumsum_forward, cumsum_backward)) return -1;
    if (nlc_register("cumprod", "cuda", cumprod_forward, cumprod_backward)) return -1;
    return 0;
}
