/*
 * reduce.cu - reductions on the device and the functions built on them: sum, mean,
 * softmax, log_softmax (CUDA kernels; cudnn.cu has the cuDNN versions) and
 * softmax_cross_entropy.
 *
 * nlc_reduce sums over any set of axes: size-1 axes are dropped and neighbours of the
 * same kind merged (as reduction.c does), then the last reduced block is summed as an
 * (A, R, B) problem -- a block per row when B = 1, a thread per (a, b) otherwise, with R
 * split into chunks and summed again when there would be too few threads -- and the
 * result feeds the next reduced block until none is left. Deterministic (no atomics).
 */
#include "common.cuh"
#include <limits.h>
#include <math.h>

/* ---- element-wise helpers ---- */

template <bool ACC> __global__ void k_axpby(int64_t n, float alpha, const float *x, float *y) {
    NLC_LOOP(i, n) y[i] = ACC ? y[i] + alpha * x[i] : alpha * x[i];
}

int nlc_axpby(int dev, const float *x, float *y, int64_t n, float alpha, bool accum) {
    if (n <= 0) return 0;
    if (nlc_set_device(dev)) return -1;
    if (!accum && alpha == 1.0f) {
        NLC_CUDA(cudaMemcpyAsync(y, x, (size_t)n * sizeof(float), cudaMemcpyDeviceToDevice));
        return 0;
    }
    if (accum) k_axpby<true><<<nlc_blocks(n), NLC_THREADS>>>(n, alpha, x, y);
    else k_axpby<false><<<nlc_blocks(n), NLC_THREADS>>>(n, alpha, x, y);
    NLC_LAUNCHED("axpby");
    return 0;
}

/* ---- (A, R, B) sums ---- */

/* B = 1: block (a, c) sums x[a, r] for r in chunk c (len rows per chunk) into
 * out[a * chunks + c], scaled (and accumulated) when chunks == 1. */
template <bool ACC>
__global__ void k_rows(const float *__restrict__ x, int64_t R, int64_t chunks, int64_t len, float *out, float scale) {
    const int64_t a = blockIdx.x / chunks, c = blockIdx.x - a * chunks;
    const int64_t r0 = c * len, r1 = r0 + len < R ? r0 + len : R;
    const float *xa = x + a * R;
    float s = 0.0f;
    for (int64_t r = r0 + threadIdx.x; r < r1; r += blockDim.x) s += xa[r];
    s = nlc_block_sum(s);
    if (threadIdx.x == 0) {
        float *o = out + blockIdx.x;
        *o = ACC ? *o + scale * s : scale * s;
    }
}

/* B > 1 (or short R): thread (a, c, b) sums x[a, r, b] for r in chunk c into
 * out[(a * chunks + c) * B + b]. */
template <bool ACC>
__global__ void k_cols(const float *__restrict__ x, int64_t A, int64_t R, int64_t B, int64_t chunks, int64_t len,
                       float *out, float scale) {
    NLC_LOOP(k, A * chunks * B) {
        const int64_t b = k % B, ac = k / B, c = ac % chunks, a = ac / chunks;
        const int64_t r0 = c * len, r1 = r0 + len < R ? r0 + len : R;
        const float *xa = x + a * R * B + b;
        float s = 0.0f;
        for (int64_t r = r0; r < r1; r++) s += xa[r * B];
        out[k] = ACC ? out[k] + scale * s : scale * s;
    }
}

static int reduce_arb(int dev, const float *x, int64_t A, int64_t R, int64_t B, float *y, float scale, bool accum) {
    const int64_t target = 4 * (int64_t)nlc_sm_count(dev);
    if (B == 1 && R >= 64) {
        int64_t chunks = 1;
        if (A < target && R >= 8192) {
            chunks = (target + A - 1) / A;
            int64_t maxc = (R + 4095) / 4096;
            if (chunks > maxc) chunks = maxc;
            if (chunks > 1024) chunks = 1024;
        }
        if (A * chunks > INT_MAX) return nl_error("reduction of %lld rows is too large", (long long)A);
        if (chunks == 1) {
            if (accum) k_rows<true><<<(unsigned)A, NLC_THREADS>>>(x, R, 1, R, y, scale);
            else k_rows<false><<<(unsigned)A, NLC_THREADS>>>(x, R, 1, R, y, scale);
            NLC_LAUNCHED("sum (rows)");
            return 0;
        }
        const int64_t len = (R + chunks - 1) / chunks;
        nlc_buf part;
        float *p = part.get(A * chunks, dev);
        if (!p) return -1;
        k_rows<false><<<(unsigned)(A * chunks), NLC_THREADS>>>(x, R, chunks, len, p, 1.0f);
        NLC_LAUNCHED("sum (rows, partial)");
        return reduce_arb(dev, p, A, chunks, 1, y, scale, accum);
    }
    int64_t chunks = 1;
    const int64_t want = 64 * target * 4;      /* threads that keep the device busy */
    if (A * B < want && R > 64) {
        chunks = (want + A * B - 1) / (A * B);
        int64_t maxc = (R + 31) / 32;
        if (chunks > maxc) chunks = maxc;
    }
    if (chunks <= 1) {
        if (accum) k_cols<true><<<nlc_blocks(A * B), NLC_THREADS>>>(x, A, R, B, 1, R, y, scale);
        else k_cols<false><<<nlc_blocks(A * B), NLC_THREADS>>>(x, A, R, B, 1, R, y, scale);
        NLC_LAUNCHED("sum (columns)");
        return 0;
    }
    const int64_t len = (R + chunks - 1) / chunks;
    nlc_buf part;
    float *p = part.get(A * chunks * B, dev);
    if (!p) return -1;
    k_cols<false><<<nlc_blocks(A * chunks * B), NLC_THREADS>>>(x, A, R, B, chunks, len, p, 1.0f);
    NLC_LAUNCHED("sum (columns, partial)");
    return reduce_arb(dev, p, A, chunks, B, y, scale, accum);
}

struct groups {
    int n;
    int64_t size[NL_MAX_NDIM];
    bool red[NL_MAX_NDIM];
};

static void merge_axes(int nd, const int64_t *shape, const bool *red, groups *g) {
    g->n = 0;
    for (int d = 0; d < nd; d++) {
        if (shape[d] == 1) continue;
        if (g->n > 0 && g->red[g->n - 1] == red[d]) { g->size[g->n - 1] *= shape[d]; continue; }
        g->red[g->n] = red[d];
        g->size[g->n++] = shape[d];
    }
}

__global__ void k_scale_fill(int64_t n, float *y, float v, bool acc) {
    NLC_LOOP(i, n) y[i] = acc ? y[i] + v : v;
}

int nlc_reduce(int dev, const float *x, int nd, const int64_t *shape, const bool *red, float *y,
               float scale, bool accum) {
    if (nlc_set_device(dev)) return -1;
    int64_t xsize = 1, ysize = 1;
    for (int d = 0; d < nd; d++) {
        xsize *= shape[d];
        if (!red[d]) ysize *= shape[d];
    }
    if (ysize == 0) return 0;
    if (xsize == 0) {                         /* empty sums: 0 * scale (NaN for an empty mean) */
        k_scale_fill<<<nlc_blocks(ysize), NLC_THREADS>>>(ysize, y, 0.0f * scale, accum);
        NLC_LAUNCHED("sum (empty)");
        return 0;
    }
    groups g;
    merge_axes(nd, shape, red, &g);
    nlc_buf tmp[2];
    int which = 0;
    const float *src = x;
    for (;;) {
        int r = -1, nred = 0;
        for (int k = 0; k < g.n; k++)
            if (g.red[k]) { r = k; nred++; }
        if (r < 0) return nlc_axpby(dev, src, y, xsize, scale, accum);
        int64_t A = 1, B = 1;
        for (int k = 0; k < r; k++) A *= g.size[k];
        for (int k = r + 1; k < g.n; k++) B *= g.size[k];
        if (nred == 1) return reduce_arb(dev, src, A, g.size[r], B, y, scale, accum);
        float *dst = tmp[which].get(A * B, dev);
        if (!dst) return -1;
        if (reduce_arb(dev, src, A, g.size[r], B, dst, 1.0f, false)) return -1;
        src = dst;
        which ^= 1;
        xsize = A * B;
        /* drop group r; its kept neighbours (r-1 exists: another reduced group precedes) merge */
        if (r + 1 < g.n) {
            g.size[r - 1] *= g.size[r + 1];
            for (int k = r; k + 2 < g.n; k++) { g.size[k] = g.size[k + 2]; g.red[k] = g.red[k + 2]; }
            g.n -= 2;
        } else {
            g.n -= 1;
        }
    }
}

/* dx[i] (+)= scale * dy[offset of i's kept coordinates] */
struct bgeom {
    int n;
    int64_t size[NL_MAX_NDIM], ostride[NL_MAX_NDIM];
};

template <bool ACC> __global__ void k_bcast_back(bgeom g, int64_t n, const float *dy, float *dx, float scale) {
    NLC_LOOP(i, n) {
        int64_t r = i, off = 0;
        for (int k = g.n - 1; k >= 0; k--) {
            const int64_t q = r / g.size[k];
            off += (r - q * g.size[k]) * g.ostride[k];
            r = q;
        }
        const float v = scale * dy[off];
        dx[i] = ACC ? dx[i] + v : v;
    }
}

int nlc_broadcast_back(int dev, const float *dy, int nd, const int64_t *shape, const bool *red,
                       float *dx, float scale, bool accum) {
    if (nlc_set_device(dev)) return -1;
    int64_t n = 1;
    for (int d = 0; d < nd; d++) n *= shape[d];
    if (n == 0) return 0;
    groups g;
    merge_axes(nd, shape, red, &g);
    bgeom bg;
    bg.n = g.n;
    int64_t s = 1;
    for (int k = g.n - 1; k >= 0; k--) {
        bg.size[k] = g.size[k];
        if (g.red[k]) bg.ostride[k] = 0;
        else { bg.ostride[k] = s; s *= g.size[k]; }
    }
    if (accum) k_bcast_back<true><<<nlc_blocks(n), NLC_THREADS>>>(bg, n, dy, dx, scale);
    else k_bcast_back<false><<<nlc_blocks(n), NLC_THREADS>>>(bg, n, dy, dx, scale);
    NLC_LAUNCHED("broadcast");
    return 0;
}

/* ---- sum, mean: the axes and scale rebuilt from the arguments (reduction.c's rule) ---- */

static int reduce_axes(nl_func *f, bool *red, float *scale, bool mean) {
    const nl_var *x = nl_in(f, 0);
    for (int d = 0; d < x->ndim; d++) red[d] = !nl_arg_given(f, 0);
    if (nl_arg_given(f, 0))
        for (int j = 0; j < nl_arg_len(f, 0); j++) {
            int a;
            if (nl_norm_axis("axis", nl_arg_at(f, 0, j), x->ndim, &a)) return -1;
            red[a] = true;
        }
    int64_t count = 1;
    for (int d = 0; d < x->ndim; d++)
        if (red[d]) count *= x->shape[d];
    *scale = !mean ? 1.0f : count > 0 ? (float)(1.0 / (double)count) : NAN;
    return 0;
}

static int reduce_forward(nl_func *f, bool mean) {
    bool red[NL_MAX_NDIM];
    float scale;
    if (reduce_axes(f, red, &scale, mean)) return -1;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(float *, y, nlc_out(f, 0));
    const nl_var *xv = nl_in(f, 0);
    return nlc_reduce(f->device_id, x, xv->ndim, xv->shape, red, y, scale, false);
}

static int reduce_backward(nl_func *f, const bool *prop, const bool *accum, bool mean) {
    if (!prop[0]) return 0;
    bool red[NL_MAX_NDIM];
    float scale;
    if (reduce_axes(f, red, &scale, mean)) return -1;
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
    const nl_var *xv = nl_in(f, 0);
    return nlc_broadcast_back(f->device_id, dy, xv->ndim, xv->shape, red, dx, scale, accum[0]);
}

static int sum_forward(nl_func *f) { return reduce_forward(f, false); }
static int mean_forward(nl_func *f) { return reduce_forward(f, true); }
static int sum_backward(nl_func *f, const bool *p, const bool *a) { return reduce_backward(f, p, a, false); }
static int mean_backward(nl_func *f, const bool *p, const bool *a) { return reduce_backward(f, p, a, true); }

/* ---- softmax / log_softmax along one axis: x (outer, C, inner) ---- */

static int axis_dims(nl_func *f, int arg, int64_t *outer, int64_t *C, int64_t *inner) {
    const nl_var *x = nl_in(f, 0);
    int a;
    if (nl_norm_axis("axis", nl_arg_int(f, arg), x->ndim, &a)) return -1;
    *outer = 1; *inner = 1;
    for (int d = 0; d < a; d++) *outer *= x->shape[d];
    for (int d = a + 1; d < x->ndim; d++) *inner *= x->shape[d];
    *C = x->shape[a];
    return 0;
}

/* one thread per (o, i): the max, the sum of exponentials, then the outputs */
__global__ void k_softmax_fwd(int64_t outer, int64_t C, int64_t inner, const float *__restrict__ x,
                              float *__restrict__ y, bool log_sm) {
    NLC_LOOP(k, outer * inner) {
        const int64_t o = k / inner, i = k - o * inner;
        const float *xo = x + o * C * inner + i;
        float *yo = y + o * C * inner + i;
        float m = -INFINITY;
        for (int64_t c = 0; c < C; c++) m = fmaxf(m, xo[c * inner]);
        if (m == -INFINITY) m = 0.0f;
        float s = 0.0f;
        for (int64_t c = 0; c < C; c++) s += expf(xo[c * inner] - m);
        if (log_sm) {
            const float lse = m + logf(s);
            for (int64_t c = 0; c < C; c++) yo[c * inner] = xo[c * inner] - lse;
        } else {
            const float r = 1.0f / s;
            for (int64_t c = 0; c < C; c++) yo[c * inner] = expf(xo[c * inner] - m) * r;
        }
    }
}

/* softmax: dx = y (dy - sum dy y); log_softmax: dx = dy - exp(y) sum dy */
template <bool ACC>
__global__ void k_softmax_bwd(int64_t outer, int64_t C, int64_t inner, const float *__restrict__ y,
                              const float *__restrict__ dy, float *dx, bool log_sm) {
    NLC_LOOP(k, outer * inner) {
        const int64_t o = k / inner, i = k - o * inner, base = o * C * inner + i;
        float s = 0.0f;
        for (int64_t c = 0; c < C; c++) {
            const int64_t j = base + c * inner;
            s += log_sm ? dy[j] : dy[j] * y[j];
        }
        for (int64_t c = 0; c < C; c++) {
            const int64_t j = base + c * inner;
            const float g = log_sm ? dy[j] - expf(y[j]) * s : y[j] * (dy[j] - s);
            dx[j] = ACC ? dx[j] + g : g;
        }
    }
}

int nlc_softmax_forward(int dev, const float *x, float *y, int64_t outer, int64_t C, int64_t inner, bool log) {
    const int64_t n = outer * inner;
    if (n == 0 || C == 0) return 0;
    if (nlc_set_device(dev)) return -1;
    k_softmax_fwd<<<nlc_blocks(n), NLC_THREADS>>>(outer, C, inner, x, y, log);
    NLC_LAUNCHED(log ? "log_softmax" : "softmax");
    return 0;
}

int nlc_softmax_backward(int dev, const float *y, const float *dy, float *dx, int64_t outer, int64_t C,
                         int64_t inner, bool log, bool accum) {
    const int64_t n = outer * inner;
    if (n == 0 || C == 0) return 0;
    if (nlc_set_device(dev)) return -1;
    if (accum) k_softmax_bwd<true><<<nlc_blocks(n), NLC_THREADS>>>(outer, C, inner, y, dy, dx, log);
    else k_softmax_bwd<false><<<nlc_blocks(n), NLC_THREADS>>>(outer, C, inner, y, dy, dx, log);
    NLC_LAUNCHED(log ? "log_softmax" : "softmax");
    return 0;
}

static int softmax_fwd_common(nl_func *f, bool log) {
    int64_t outer, C, inner;
    if (axis_dims(f, 0, &outer, &C, &inner)) return -1;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(float *, y, nlc_out(f, 0));
    return nlc_softmax_forward(f->device_id, x, y, outer, C, inner, log);
}

static int softmax_bwd_common(nl_func *f, const bool *prop, const bool *accum, bool log) {
    if (!prop[0]) return 0;
    int64_t outer, C, inner;
    if (axis_dims(f, 0, &outer, &C, &inner)) return -1;
    NLC_PTR(const float *, y, nlc_out_r(f, 0));
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
    return nlc_softmax_backward(f->device_id, y, dy, dx, outer, C, inner, log, accum[0]);
}

static int softmax_forward(nl_func *f) { return softmax_fwd_common(f, false); }
static int log_softmax_forward(nl_func *f) { return softmax_fwd_common(f, true); }
static int softmax_backward(nl_func *f, const bool *p, const bool *a) { return softmax_bwd_common(f, p, a, false); }
static int log_softmax_backward(nl_func *f, const bool *p, const bool *a) { return softmax_bwd_common(f, p, a, true); }

/* ---- softmax_cross_entropy: x (outer, C, inner), target and y (outer, 1, inner) ---- */

struct sce_state {
    nlc_buf lse;           /* log-sum-exp per (o, i), kept for backward */
    nlc_buf flag;          /* first bad label position (as an unsigned long long) */
};

__device__ __forceinline__ bool sce_label_ok(float l, int64_t C) {
    return l >= 0.0f && l <= (float)(C - 1) && l == floorf(l);
}

__global__ void k_sce_fwd(int64_t outer, int64_t C, int64_t inner, const float *__restrict__ x,
                          const float *__restrict__ t, float *y, float *lse, unsigned long long *bad) {
    NLC_LOOP(k, outer * inner) {
        const int64_t o = k / inner, i = k - o * inner;
        const float *xo = x + o * C * inner + i;
        float m = -INFINITY;
        for (int64_t c = 0; c < C; c++) m = fmaxf(m, xo[c * inner]);
        if (m == -INFINITY) m = 0.0f;
        float s = 0.0f;
        for (int64_t c = 0; c < C; c++) s += expf(xo[c * inner] - m);
        const float l = m + logf(s);
        lse[k] = l;
        const float lab = t[k];
        if (!sce_label_ok(lab, C)) {
            atomicMin(bad, (unsigned long long)k);
            y[k] = NAN;
        } else {
            y[k] = l - xo[(int64_t)lab * inner];
        }
    }
}

template <bool ACC>
__global__ void k_sce_bwd(int64_t outer, int64_t C, int64_t inner, const float *__restrict__ x,
                          const float *__restrict__ t, const float *__restrict__ dy, const float *__restrict__ lse,
                          float *dx) {
    NLC_LOOP(j, outer * C * inner) {
        const int64_t i = j % inner, oc = j / inner, c = oc % C, o = oc / C, pos = o * inner + i;
        const float lab = t[pos];
        float g = dy[pos] * expf(x[j] - lse[pos]);
        if (sce_label_ok(lab, C) && (int64_t)lab == c) g -= dy[pos];
        dx[j] = ACC ? dx[j] + g : g;
    }
}

static int sce_forward(nl_func *f) {
    int64_t outer, C, inner;
    if (axis_dims(f, 0, &outer, &C, &inner)) return -1;
    sce_state *st = nlc_state<sce_state>(f);
    if (!st) return -1;
    const int dev = f->device_id;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(const float *, t, nlc_in(f, 1));
    NLC_PTR(float *, y, nlc_out(f, 0));
    const int64_t n = outer * inner;
    if (n == 0) return 0;
    NLC_PTR(float *, lse, st->lse.get(n, dev));
    NLC_PTR(unsigned long long *, bad, nlc_flag_arm(st->flag, dev));
    k_sce_fwd<<<nlc_blocks(n), NLC_THREADS>>>(outer, C, inner, x, t, y, lse, bad);
    NLC_LAUNCHED("softmax_cross_entropy");
    int64_t h = -1;
    if (nlc_flag_key(bad, &h)) return -1;
    if (h >= 0) {
        float l = 0.0f;
        NLC_CUDA(cudaMemcpy(&l, t + h, sizeof l, cudaMemcpyDeviceToHost));
        const bool in_range = l >= 0.0f && l <= (float)(C - 1);
        return nl_error("label %g at position %lld is out of range 0..%lld%s", (double)l, (long long)(h + 1),
                        (long long)(C - 1), in_range ? " (labels are integer class ids)" : "");
    }
    return 0;
}

static int sce_backward(nl_func *f, const bool *prop, const bool *accum) {
    int64_t outer, C, inner;
    if (axis_dims(f, 0, &outer, &C, &inner)) return -1;
    if (prop[0]) {
        sce_state *st = nlc_state<sce_state>(f);
        if (!st) return -1;
        const int64_t n = outer * C * inner;
        if (n > 0 && !st->lse.p) return nl_error("forward must run before backward");
        NLC_PTR(const float *, x, nlc_in(f, 0));
        NLC_PTR(const float *, t, nlc_in(f, 1));
        NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
        NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
        if (n > 0) {
            if (accum[0]) k_sce_bwd<true><<<nlc_blocks(n), NLC_THREADS>>>(outer, C, inner, x, t, dy, st->lse.p, dx);
            else k_sce_bwd<false><<<nlc_blocks(n), NLC_THREADS>>>(outer, C, inner, x, t, dy, st->lse.p, dx);
            NLC_LAUNCHED("softmax_cross_entropy");
        }
    }
    if (prop[1] && !accum[1]) {   /* labels get no gradient */
        NLC_PTR(float *, dt, nlc_in_grad(f, 1, false));
        if (nlc_fill(f->device_id, dt, 0.0f, nl_in(f, 1)->size)) return -1;
    }
    return 0;
}

int nlc_register_reduce(void) {
    if (nlc_register("sum", "cuda", sum_forward, sum_backward)) return -1;
    if (nlc_register("mean", "cuda", mean_forward, mean_backward)) return -1;
    if (nlc_register("softmax", "cuda", softmax_forward, softmax_backward)) return -1;
    if (nlc_register("log_softmax", "cuda", log_softmax_forward, log_softmax_backward)) return -1;
    if (nlc_register("softmax_cross_entropy", "cuda", sce_forward, sce_backward)) return -1;
    return 0;
}
