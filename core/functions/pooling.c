/*
 * pooling.c - max and average pooling over the last len(kernel) axes (1 to 3), with
 * NNabla's exact semantics (src/nbla/function/generic/{max,average}_pooling.cpp and
 * utils/base_pooling.cpp):
 *   max_pooling(x, kernel, stride=nil, ignore_border=true, pad=nil, channel_last=false)
 *   average_pooling(x, kernel, stride=nil, ignore_border=true, pad=nil, channel_last=false,
 *                   including_pad=true)
 * stride defaults to kernel, pad to 0. Output size per pooled axis:
 *   ignore_border = true:  (I + 2*pad - K) / stride + 1
 *   ignore_border = false: (I + pad - 1) / stride + 1      (NNabla's formula)
 * Window of output o: [o*stride - pad, min(o*stride - pad + K, I + pad)), clipped to
 * [0, I) for reading. Padding never wins a max; the average divides by the window size
 * before clipping (including_pad) or after (not). A window that holds no input cell at
 * all (only possible when pad >= kernel) gives 0 and no gradient.
 * Max pooling keeps the argmax of every output (int32 offset within its map, in node
 * scratch) for backward.
 */
#include "../src/function.h"
#include "pool_geometry.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>

enum { A_KERNEL, A_STRIDE, A_IGNORE_BORDER, A_PAD, A_CHANNEL_LAST, A_INCLUDING_PAD };
enum { SD = NL_POOL_SD };   /* pooled axes handled by the kernels (fewer are padded with 1s) */

static const nl_argdef max_pool_args[] = {
    {"kernel", NL_ARG_INTS, "nil", NULL},
    {"stride", NL_ARG_INTS, "nil", NULL},
    {"ignore_border", NL_ARG_BOOL, "true", NULL},
    {"pad", NL_ARG_INTS, "nil", NULL},
    {"channel_last", NL_ARG_BOOL, "false", NULL},
};

static const nl_argdef avg_pool_args[] = {
    {"kernel", NL_ARG_INTS, "nil", NULL},
    {"stride", NL_ARG_INTS, "nil", NULL},
    {"ignore_border", NL_ARG_BOOL, "true", NULL},
    {"pad", NL_ARG_INTS, "nil", NULL},
    {"channel_last", NL_ARG_BOOL, "false", NULL},
    {"including_pad", NL_ARG_BOOL, "true", NULL},
};

typedef struct pool_state {
    int64_t maps;                       /* prod of the axes before the pooled ones */
    int64_t in[SD], out[SD], k[SD], stride[SD], pad[SD];
    int64_t in_size, out_size;          /* per map */
    bool including_pad;
    bool forward_done;                  /* max: argmax indices are valid */
    bool inside;                        /* no padding and every window inside the map */
} pool_state;

static int pool_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0);
    char xs[160];
    nl_shape_str(xs, x->ndim, x->shape);
    if (nl_arg_bool(f, A_CHANNEL_LAST))
        return nl_error("channel_last = true is not done by the engine (its kernels are channel-first): the Lua wrapper F.* moves the channel axis around the call");
    if (!nl_arg_given(f, A_KERNEL))
        return nl_error("argument 'kernel' is required (a list such as {2, 2})");
    const int sd = nl_arg_len(f, A_KERNEL);
    if (sd < 1 || sd > SD)
        return nl_error("kernel has %d entries; pooling over 1 to %d axes is supported", sd, SD);
    if (sd > x->ndim)
        return nl_error("kernel has %d entries but x %s has only %d axes", sd, xs, x->ndim);
    if (nl_arg_given(f, A_STRIDE) && nl_arg_len(f, A_STRIDE) != sd)
        return nl_error("stride has %d entries but kernel has %d", nl_arg_len(f, A_STRIDE), sd);
    if (nl_arg_given(f, A_PAD) && nl_arg_len(f, A_PAD) != sd)
        return nl_error("pad has %d entries but kernel has %d", nl_arg_len(f, A_PAD), sd);
    const bool ignore_border = nl_arg_bool(f, A_IGNORE_BORDER);

    pool_state st = {0};
    nl_pool_geom g;
    if (nl_pool_geometry(f, x, xs, sd, A_KERNEL, A_STRIDE, A_PAD, ignore_border, &g)) return -1;
    NL_POOL_GEOM_COPY(st, g);
    if (st.in_size > INT_MAX)
        return nl_error("x %s: a pooled map of %lld values is too large", xs, (long long)st.in_size);
    st.including_pad = f->def->n_args > A_INCLUDING_PAD ? nl_arg_bool(f, A_INCLUDING_PAD) : true;
    st.inside = true;
    for (int i = 0; i < SD; i++)
        if (st.pad[i] != 0 || (st.out[i] - 1) * st.stride[i] + st.k[i] > st.in[i]) st.inside = false;
    nl_set_out_shape(f, 0, x->ndim, g.oshape);

    pool_state *ps = malloc(sizeof *ps);
    if (!ps) return nl_error("out of memory");
    *ps = st;
    f->state = ps;
    return 0;
}

static void pool_destroy(nl_func *f) { free(f->state); }

/* The clipped window of output (o0, o1, o2): [lo, hi) per axis; returns the window size
 * before clipping (to the padded extent) and sets *inner to the count of input cells. */
static inline int64_t pool_window(const pool_state *st, const int64_t *o, int64_t *lo,
                                  int64_t *hi, int64_t *inner) {
    int64_t full = 1, in = 1;
    for (int a = 0; a < SD; a++) {
        int64_t s = o[a] * st->stride[a] - st->pad[a];
        int64_t e = s + st->k[a];
        if (e > st->in[a] + st->pad[a]) e = st->in[a] + st->pad[a];
        full *= e - s;
        if (s < 0) s = 0;
        if (e > st->in[a]) e = st->in[a];
        lo[a] = s;
        hi[a] = e;
        in *= e > s ? e - s : 0;
    }
    *inner = in;
    return full;
}

/* ---- max pooling ---- */

#if defined(__GNUC__) && !defined(__clang__)
typedef float nl_v4f __attribute__((vector_size(16)));
typedef int32_t nl_v4i __attribute__((vector_size(16)));
/* m ? a : b lane-wise (m: all ones or zeros per lane) */
static inline nl_v4f nl_v4_select(nl_v4i m, nl_v4f a, nl_v4f b) {
    nl_v4i ia, ib;
    __builtin_memcpy(&ia, &a, sizeof ia);
    __builtin_memcpy(&ib, &b, sizeof ib);
    nl_v4i r = (m & ia) | (~m & ib);
    nl_v4f f;
    __builtin_memcpy(&f, &r, sizeof f);
    return f;
}
#endif

typedef struct pool_ctx {
    const pool_state *st;
    const float *x;
    float *y;
    int32_t *idx;
    float *dx;
    const float *dy;
    bool accum;
} pool_ctx;

/* Every window inside the map: [o*s, o*s + k) on each axis, no clipping. */
static inline __attribute__((always_inline)) void max_fwd_inside(const pool_ctx *c, int64_t m0, int64_t m1) {
    const pool_state *st = c->st;
    const int64_t I1 = st->in[1], I2 = st->in[2];
    const int64_t K0 = st->k[0], K1 = st->k[1], K2 = st->k[2];
    const int64_t S0 = st->stride[0], S1 = st->stride[1], S2 = st->stride[2];
    if (K0 == 1 && K1 == 2 && K2 == 2 && S1 == 2 && S2 == 2) {   /* 2x2, stride 2 */
        const int64_t O1 = st->out[1], O2 = st->out[2];
        for (int64_t m = m0; m < m1; m++)
            for (int64_t o0 = 0; o0 < st->out[0]; o0++)
                for (int64_t o1 = 0; o1 < O1; o1++) {
                    const int64_t b0 = (o0 * S0 * I1 + 2 * o1) * I2;
                    const float *restrict x = c->x + m * st->in_size;
                    float *restrict y = c->y + m * st->out_size + (o0 * O1 + o1) * O2;
                    int32_t *restrict idx = c->idx + m * st->out_size + (o0 * O1 + o1) * O2;
                    const float *restrict r0 = x + b0, *restrict r1 = r0 + I2;
                    const int32_t a0 = (int32_t)b0, i2 = (int32_t)I2;
                    int32_t o2 = 0;
#if defined(__GNUC__) && !defined(__clang__)
                    /* four windows at a time (GCC vector extensions): the same comparisons
                     * in the same order, so ties and NaNs resolve as in the loop below */
                    for (; o2 + 4 <= (int32_t)O2; o2 += 4) {
                        nl_v4f t0, t1, u0, u1;
                        __builtin_memcpy(&t0, r0 + 2 * o2, sizeof t0);
                        __builtin_memcpy(&t1, r0 + 2 * o2 + 4, sizeof t1);
                        __builtin_memcpy(&u0, r1 + 2 * o2, sizeof u0);
                        __builtin_memcpy(&u1, r1 + 2 * o2 + 4, sizeof u1);
                        const nl_v4i even = {0, 2, 4, 6}, odd = {1, 3, 5, 7};
                        const nl_v4f v0 = __builtin_shuffle(t0, t1, even), v1 = __builtin_shuffle(t0, t1, odd);
                        const nl_v4f v2 = __builtin_shuffle(u0, u1, even), v3 = __builtin_shuffle(u0, u1, odd);
                        const nl_v4i a = (a0 + 2 * o2) + 2 * (nl_v4i){0, 1, 2, 3};
                        nl_v4f bv = v0;
                        nl_v4i best = a, m;
                        m = bv < v1; best = (m & (a + 1)) | (~m & best); bv = nl_v4_select(m, v1, bv);
                        m = bv < v2; best = (m & (a + i2)) | (~m & best); bv = nl_v4_select(m, v2, bv);
                        m = bv < v3; best = (m & (a + i2 + 1)) | (~m & best); bv = nl_v4_select(m, v3, bv);
                        __builtin_memcpy(y + o2, &bv, sizeof bv);
                        __builtin_memcpy(idx + o2, &best, sizeof best);
                    }
#endif
                    for (; o2 < (int32_t)O2; o2++) {
                        /* the window in scan order; the first maximum wins (branch-free) */
                        const float v0 = r0[2 * o2], v1 = r0[2 * o2 + 1];
                        const float v2 = r1[2 * o2], v3 = r1[2 * o2 + 1];
                        const int32_t a = a0 + 2 * o2;
                        float bv = v0;
                        int32_t best = a;
                        best = bv < v1 ? a + 1 : best;
                        bv = bv < v1 ? v1 : bv;
                        best = bv < v2 ? a + i2 : best;
                        bv = bv < v2 ? v2 : bv;
                        best = bv < v3 ? a + i2 + 1 : best;
                        bv = bv < v3 ? v3 : bv;
                        y[o2] = bv;
                        idx[o2] = best;
                    }
                }
        return;
    }
    for (int64_t m = m0; m < m1; m++) {
        const float *restrict x = c->x + m * st->in_size;
        float *restrict y = c->y + m * st->out_size;
        int32_t *restrict idx = c->idx + m * st->out_size;
        for (int64_t o0 = 0; o0 < st->out[0]; o0++)
            for (int64_t o1 = 0; o1 < st->out[1]; o1++)
                for (int64_t o2 = 0; o2 < st->out[2]; o2++) {
                    const int64_t first = (o0 * S0 * I1 + o1 * S1) * I2 + o2 * S2;
                    int64_t best = first;
                    float bv = x[first];
                    for (int64_t a = 0; a < K0; a++)
                        for (int64_t b = 0; b < K1; b++) {
                            const int64_t base = first + (a * I1 + b) * I2;
                            for (int64_t e = 0; e < K2; e++)
                                if (bv < x[base + e]) { bv = x[base + e]; best = base + e; }
                        }
                    *y++ = bv;
                    *idx++ = (int32_t)best;
                }
    }
}

/* x: (maps, I0, I1, I2) -> y, idx: (maps, O0, O1, O2) */
static NL_SIMD_CLONES void max_fwd_range(int64_t m0, int64_t m1, void *vctx) {
    const pool_ctx *c = vctx;
    const pool_state *st = c->st;
    const int64_t I1 = st->in[1], I2 = st->in[2];
    if (st->inside) { max_fwd_inside(c, m0, m1); return; }
    for (int64_t m = m0; m < m1; m++) {
        const float *x = c->x + m * st->in_size;
        float *y = c->y + m * st->out_size;
        int32_t *idx = c->idx + m * st->out_size;
        int64_t o[SD], lo[SD], hi[SD], inner;
        for (o[0] = 0; o[0] < st->out[0]; o[0]++)
            for (o[1] = 0; o[1] < st->out[1]; o[1]++)
                for (o[2] = 0; o[2] < st->out[2]; o[2]++) {
                    pool_window(st, o, lo, hi, &inner);
                    if (inner == 0) { *y++ = 0.0f; *idx++ = -1; continue; }
                    int64_t best = (lo[0] * I1 + lo[1]) * I2 + lo[2];
                    float bv = x[best];
                    for (int64_t i0 = lo[0]; i0 < hi[0]; i0++)
                        for (int64_t i1 = lo[1]; i1 < hi[1]; i1++) {
                            const int64_t base = (i0 * I1 + i1) * I2;
                            for (int64_t i2 = lo[2]; i2 < hi[2]; i2++)
                                if (bv < x[base + i2]) { bv = x[base + i2]; best = base + i2; }
                        }
                    *y++ = bv;
                    *idx++ = (int32_t)best;
                }
    }
}

static int max_pool_forward(nl_func *f) {
    pool_state *st = f->state;
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(float *, y, nl_out_data(f, 0));
    if (st->maps * st->out_size == 0) { st->forward_done = true; return 0; }
    int32_t *idx = (int32_t *)nl_func_scratch(f, 0, st->maps * st->out_size);
    if (!idx) return nl_error("out of memory for the argmax indices");
    pool_ctx c = {.st = st, .x = x, .y = y, .idx = idx};
    nl_parallel_for(st->maps, nl_pool_work(st->out_size, st->k), max_fwd_range, &c);
    st->forward_done = true;
    return 0;
}

/* dy, idx: (maps, O0, O1, O2) -> dx: (maps, I0, I1, I2) (zeroed or accumulated) */
static NL_SIMD_CLONES void max_bwd_range(int64_t m0, int64_t m1, void *vctx) {
    const pool_ctx *c = vctx;
    const pool_state *st = c->st;
    for (int64_t m = m0; m < m1; m++) {
        float *restrict dxm = c->dx + m * st->in_size;
        const float *restrict dym = c->dy + m * st->out_size;
        const int32_t *restrict im = c->idx + m * st->out_size;
        if (!c->accum) memset(dxm, 0, (size_t)st->in_size * sizeof(float));
        for (int64_t i = 0; i < st->out_size; i++)
            if (im[i] >= 0) dxm[im[i]] += dym[i];
    }
}

static int max_pool_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    const pool_state *st = f->state;
    if (!st->forward_done) return nl_error("forward must run before backward");
    const int32_t *idx = (const int32_t *)f->scratch[0];
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    NL_PTR(float *, dx, nl_in_grad(f, 0, accum[0]));
    pool_ctx c = {.st = st, .dx = dx, .dy = dy, .idx = (int32_t *)idx, .accum = accum[0]};
    nl_parallel_for(st->maps, st->in_size + st->out_size, max_bwd_range, &c);
    return 0;
}

/* ---- average pooling ---- */

/* Every window inside the map (no padding): y = the window's mean. */
static inline __attribute__((always_inline)) void avg_fwd_inside(const pool_ctx *c, int64_t m0, int64_t m1) {
    const pool_state *st = c->st;
    const int64_t I1 = st->in[1], I2 = st->in[2];
    const int64_t K0 = st->k[0], K1 = st->k[1], K2 = st->k[2];
    const int64_t S0 = st->stride[0], S1 = st->stride[1], S2 = st->stride[2];
    const float n = (float)(K0 * K1 * K2);
    if (K0 == 1 && K1 == 2 && K2 == 2 && S1 == 2 && S2 == 2) {   /* 2x2, stride 2 */
        const int64_t O1 = st->out[1], O2 = st->out[2];
        for (int64_t m = m0; m < m1; m++)
            for (int64_t o0 = 0; o0 < st->out[0]; o0++)
                for (int64_t o1 = 0; o1 < O1; o1++) {
                    const float *restrict r0 = c->x + m * st->in_size + (o0 * S0 * I1 + 2 * o1) * I2;
                    const float *restrict r1 = r0 + I2;
                    float *restrict y = c->y + m * st->out_size + (o0 * O1 + o1) * O2;
                    for (int64_t o2 = 0; o2 < O2; o2++)
                        y[o2] = (((r0[2 * o2] + r0[2 * o2 + 1]) + r1[2 * o2]) + r1[2 * o2 + 1]) / n;
                }
        return;
    }
    for (int64_t m = m0; m < m1; m++) {
        const float *restrict x = c->x + m * st->in_size;
        float *restrict y = c->y + m * st->out_size;
        for (int64_t o0 = 0; o0 < st->out[0]; o0++)
            for (int64_t o1 = 0; o1 < st->out[1]; o1++)
                for (int64_t o2 = 0; o2 < st->out[2]; o2++) {
                    const float *w = x + (o0 * S0 * I1 + o1 * S1) * I2 + o2 * S2;
                    float s = 0.0f;
                    for (int64_t a = 0; a < K0; a++)
                        for (int64_t b = 0; b < K1; b++)
                            for (int64_t e = 0; e < K2; e++) s += w[(a * I1 + b) * I2 + e];
                    *y++ = s / n;
                }
    }
}

/* dx (+)= dy / window size over every window (no padding, windows inside the map) */
static inline __attribute__((always_inline)) void avg_bwd_inside(const pool_ctx *c, int64_t m0, int64_t m1) {
    const pool_state *st = c->st;
    const int64_t I1 = st->in[1], I2 = st->in[2];
    const int64_t K0 = st->k[0], K1 = st->k[1], K2 = st->k[2];
    const int64_t S0 = st->stride[0], S1 = st->stride[1], S2 = st->stride[2];
    const float n = (float)(K0 * K1 * K2);
    if (K0 == 1 && K1 == 2 && K2 == 2 && S1 == 2 && S2 == 2) {   /* 2x2, stride 2 */
        const int64_t O1 = st->out[1], O2 = st->out[2];
        for (int64_t m = m0; m < m1; m++)
            for (int64_t o0 = 0; o0 < st->out[0]; o0++)
                for (int64_t o1 = 0; o1 < O1; o1++) {
                    float *restrict r0 = c->dx + m * st->in_size + (o0 * S0 * I1 + 2 * o1) * I2;
                    float *restrict r1 = r0 + I2;
                    const float *restrict dy = c->dy + m * st->out_size + (o0 * O1 + o1) * O2;
                    for (int64_t o2 = 0; o2 < O2; o2++) {
                        const float g = dy[o2] / n;
                        r0[2 * o2] += g; r0[2 * o2 + 1] += g;
                        r1[2 * o2] += g; r1[2 * o2 + 1] += g;
                    }
                }
        return;
    }
    for (int64_t m = m0; m < m1; m++) {
        float *restrict dx = c->dx + m * st->in_size;
        const float *restrict dy = c->dy + m * st->out_size;
        for (int64_t o0 = 0; o0 < st->out[0]; o0++)
            for (int64_t o1 = 0; o1 < st->out[1]; o1++)
                for (int64_t o2 = 0; o2 < st->out[2]; o2++) {
                    float *w = dx + (o0 * S0 * I1 + o1 * S1) * I2 + o2 * S2;
                    const float g = *dy++ / n;
                    for (int64_t a = 0; a < K0; a++)
                        for (int64_t b = 0; b < K1; b++)
                            for (int64_t e = 0; e < K2; e++) w[(a * I1 + b) * I2 + e] += g;
                }
    }
}

/* x: (maps, I0, I1, I2) -> y: (maps, O0, O1, O2) */
static NL_SIMD_CLONES void avg_fwd_range(int64_t m0, int64_t m1, void *vctx) {
    const pool_ctx *c = vctx;
    const pool_state *st = c->st;
    const int64_t I1 = st->in[1], I2 = st->in[2];
    if (st->inside) { avg_fwd_inside(c, m0, m1); return; }
    for (int64_t m = m0; m < m1; m++) {
        const float *x = c->x + m * st->in_size;
        float *y = c->y + m * st->out_size;
        int64_t o[SD], lo[SD], hi[SD], inner;
        for (o[0] = 0; o[0] < st->out[0]; o[0]++)
            for (o[1] = 0; o[1] < st->out[1]; o[1]++)
                for (o[2] = 0; o[2] < st->out[2]; o[2]++) {
                    int64_t full = pool_window(st, o, lo, hi, &inner);
                    int64_t n = st->including_pad ? full : inner;
                    float s = 0.0f;
                    for (int64_t i0 = lo[0]; i0 < hi[0]; i0++)
                        for (int64_t i1 = lo[1]; i1 < hi[1]; i1++) {
                            const float *r = x + (i0 * I1 + i1) * I2;
                            for (int64_t i2 = lo[2]; i2 < hi[2]; i2++) s += r[i2];
                        }
                    *y++ = n > 0 ? s / (float)n : 0.0f;
                }
    }
}

/* dy: (maps, O0, O1, O2) -> dx: (maps, I0, I1, I2) (zeroed or accumulated) */
static NL_SIMD_CLONES void avg_bwd_range(int64_t m0, int64_t m1, void *vctx) {
    const pool_ctx *c = vctx;
    const pool_state *st = c->st;
    const int64_t I1 = st->in[1], I2 = st->in[2];
    if (st->inside) { avg_bwd_inside(c, m0, m1); return; }
    for (int64_t m = m0; m < m1; m++) {
        float *dx = c->dx + m * st->in_size;
        const float *dy = c->dy + m * st->out_size;
        int64_t o[SD], lo[SD], hi[SD], inner;
        for (o[0] = 0; o[0] < st->out[0]; o[0]++)
            for (o[1] = 0; o[1] < st->out[1]; o[1]++)
                for (o[2] = 0; o[2] < st->out[2]; o[2]++) {
                    int64_t full = pool_window(st, o, lo, hi, &inner);
                    int64_t n = st->including_pad ? full : inner;
                    const float g = n > 0 ? *dy / (float)n : 0.0f;
                    dy++;
                    for (int64_t i0 = lo[0]; i0 < hi[0]; i0++)
                        for (int64_t i1 = lo[1]; i1 < hi[1]; i1++) {
                            float *r = dx + (i0 * I1 + i1) * I2;
                            for (int64_t i2 = lo[2]; i2 < hi[2]; i2++) r[i2] += g;
                        }
                }
    }
}

static int avg_pool_forward(nl_func *f) {
    const pool_state *st = f->state;
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(float *, y, nl_out_data(f, 0));
    pool_ctx c = {.st = st, .x = x, .y = y};
    nl_parallel_for(st->maps, nl_pool_work(st->out_size, st->k), avg_fwd_range, &c);
    return 0;
}

static int avg_pool_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    const pool_state *st = f->state;
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    NL_PTR(float *, dx, nl_in_grad(f, 0, accum[0]));
    if (!accum[0]) memset(dx, 0, (size_t)(st->maps * st->in_size) * sizeof(float));
    pool_ctx c = {.st = st, .dx = dx, .dy = dy};
    nl_parallel_for(st->maps, nl_pool_work(st->out_size, st->k), avg_bwd_range, &c);
    return 0;
}

const nl_fdef nl_fdef_max_pooling = {
    .name = "max_pooling",
    .doc = "max over windows of the last len(kernel) axes (1 to 3); stride defaults to kernel",
    .in_names = "x",
    .n_in = 1,
    .n_out = 1,
    .n_args = 5,
    .args = max_pool_args,
    .setup = pool_setup,
    .forward = max_pool_forward,
    .backward = max_pool_backward,
    .destroy = pool_destroy,
    .grad_in_data = 0,    /* backward uses the argmax kept by forward */
    .grad_out_data = 0,
};

const nl_fdef nl_fdef_average_pooling = {
    .name = "average_pooling",
    .doc = "mean over windows of the last len(kernel) axes (1 to 3); stride defaults to kernel",
    .in_names = "x",
    .n_in = 1,
    .n_out = 1,
    .n_args = 6,
    .args = avg_pool_args,
    .setup = pool_setup,
    .forward = avg_pool_forward,
    .backward = avg_pool_backward,
    .destroy = pool_destroy,
    .grad_in_data = 0,
    .grad_out_data = 0,
};
