/*
 * convolution.c - N-d convolution (1 to 3 spatial axes), NNabla's Convolution:
 *   convolution(x, weight, [bias], base_axis=2, pad=nil, stride=nil, dilation=nil,
 *               group=1, channel_last=false)
 * x: (B..., C, I...) with the channel axis at base_axis (Lua-style, 1-based), weight:
 * (OC, C/group, K...), bias: (OC); y: (B..., OC, O...) with
 *   O = (I + 2*pad - dilation*(K-1) - 1) / stride + 1.
 * pad/stride/dilation default to 0/1/1 per spatial axis. Lowered to GEMM over chunks of
 * samples (about 1 MiB of columns each): im2col of a chunk into one column buffer (node
 * scratch, reused), one sgemm per group and chunk; backward uses the same buffer for
 * dW = dy col^T and dx = col2im(W^T dy). With several threads, chunks are tasks with
 * per-thread buffers (see "batched lowering"). Small samples with narrow or strided maps
 * im2col through a precomputed gather table (and col2im through its inverse); when the
 * columns of the whole batch are small, forward keeps them for backward's dW.
 * Internally 1-d and 2-d problems are 3-d ones with leading size-1 axes. Small 1-d/2-d
 * problems with few channels (the tutorial's) skip the lowering: conv_batchvec.c does them
 * directly with the batch as the vector axis (conv_choose_batchvec).
 */
#include "../src/function.h"
#include "conv_batchvec.h"
#include "conv_geometry.h"
#include "vmath.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>

enum { A_BASE_AXIS, A_PAD, A_STRIDE, A_DILATION, A_GROUP, A_CHANNEL_LAST };

static const nl_argdef conv_args[] = {
    {"base_axis", NL_ARG_INT, "2", NULL},
    {"pad", NL_ARG_INTS, "nil", NULL},
    {"stride", NL_ARG_INTS, "nil", NULL},
    {"dilation", NL_ARG_INTS, "nil", NULL},
    {"group", NL_ARG_INT, "1", NULL},
    {"channel_last", NL_ARG_BOOL, "false", NULL},
};

enum { SD = 3 };   /* spatial axes handled by the kernels (fewer are padded with 1s) */
enum { CONV_TABLE_X = 4096 };   /* largest sample (C * prod I) lowered through a table */
/* see conv_state.kept_x: worth it while the columns stay in cache (the tutorial's 36 KiB and
 * 147 KiB); LeNet's 4-8 MiB are faster recomputed than written out and read back */
static const int64_t CONV_KEEP_BYTES = (int64_t)2 << 20;

typedef struct conv_geom {
    int64_t c;                 /* input channels */
    int64_t in[SD], out[SD];   /* spatial sizes */
    int64_t k[SD], pad[SD], stride[SD], dil[SD];
} conv_geom;

typedef struct conv_state {
    conv_geom g;
    int64_t outer;             /* prod of the axes before the channel axis */
    int64_t oc, group;
    int64_t ocg, kg;           /* per group: output channels, rows of col (C/group * prod K) */
    int64_t p_in, p_out;       /* prod of input / output spatial sizes */
    bool direct;               /* 1x1 kernel, stride 1, no pad: col is x itself */
    int64_t nb;                /* samples per chunk of the batched lowering */
    int32_t *idx;              /* small samples: im2col as a table, (C*K rows, P) offsets
                                * into a sample of x, which is copied into a buffer with one
                                * zero after it: padding reads offset C*I (the zero); NULL:
                                * im2col computed on the fly */
    int32_t *inv_off;          /* with idx: for input offset i, the table entries reading it */
    int32_t *inv_r, *inv_p;    /* are inv_off[i] .. inv_off[i+1]-1: their row and column */
    int64_t *inv_q;            /* and their place in a chunk's column buffer: r*q_nb*P + p */
    int64_t q_nb;              /* the chunk size inv_q was computed for */
    /* Forward keeps the batch's columns (node scratch 3) for backward's dW when the weight
     * needs a gradient and they fit CONV_KEEP_BYTES: valid while x's array is the one
     * (and at the version) forward read, with the same chunking. */
    const nl_array *kept_x;
    uint64_t kept_version;
    int64_t kept_nb;
    bool batchvec;             /* small 1-d/2-d problems: conv_batchvec.c instead of GEMM */
    nl_cbv_geom cbv;
} conv_state;

/* Output positions o in [0, n_out) with 0 <= o*s + off < n_in form [*lo, *hi). */
static inline void valid_range(int64_t off, int64_t s, int64_t n_in, int64_t n_out,
                               int64_t *lo, int64_t *hi) {
    int64_t a = off >= 0 ? 0 : (-off + s - 1) / s;
    int64_t b = off >= n_in ? 0 : (n_in - off + s - 1) / s;
    if (a > n_out) a = n_out;
    if (b > n_out) b = n_out;
    if (b < a) b = a;
    *lo = a;
    *hi = b;
}

/* Short runs (a map row: a few to a few dozen values) in fixed-size pieces, which compile
 * to plain vector moves without the loop set-up a general-length vector loop costs. */
static inline __attribute__((always_inline)) void copy_run(float *restrict d, const float *restrict s,
                                                           int64_t n) {
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) __builtin_memcpy(d + j, s + j, 8 * sizeof(float));
    if (j + 4 <= n) { __builtin_memcpy(d + j, s + j, 4 * sizeof(float)); j += 4; }
    for (; j < n; j++) d[j] = s[j];
}

static inline __attribute__((always_inline)) void add_run(float *restrict d, const float *restrict s,
                                                          int64_t n) {
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int u = 0; u < 8; u++) d[j + u] += s[j + u];
    for (; j < n; j++) d[j] += s[j];
}

/* x: (C, I0, I1, I2) -> col: (C * K0 * K1 * K2) rows of O0 * O1 * O2 values, row r at
 * col + r * ld (ld >= O0*O1*O2: samples of a batch chunk sit side by side), zeros where
 * the window reads padding. */
static inline __attribute__((always_inline)) void im2col(const conv_geom *g, const float *restrict x,
                                                          float *restrict col, int64_t ld) {
    const int64_t O0 = g->out[0], O1 = g->out[1], O2 = g->out[2];
    const int64_t I0 = g->in[0], I1 = g->in[1], I2 = g->in[2];
    const int64_t s2 = g->stride[2];
    float *row = col;
    for (int64_t c = 0; c < g->c; c++)
        for (int64_t a = 0; a < g->k[0]; a++)
            for (int64_t b = 0; b < g->k[1]; b++)
                for (int64_t e = 0; e < g->k[2]; e++, row += ld) {
                    const int64_t off2 = e * g->dil[2] - g->pad[2];
                    int64_t lo, hi;
                    valid_range(off2, s2, I2, O2, &lo, &hi);
                    float *r = row;
                    for (int64_t o0 = 0; o0 < O0; o0++) {
                        const int64_t i0 = o0 * g->stride[0] - g->pad[0] + a * g->dil[0];
                        if (i0 < 0 || i0 >= I0) {
                            for (int64_t j = 0; j < O1 * O2; j++) r[j] = 0.0f;
                            r += O1 * O2;
                            continue;
                        }
                        for (int64_t o1 = 0; o1 < O1; o1++, r += O2) {
                            const int64_t i1 = o1 * g->stride[1] - g->pad[1] + b * g->dil[1];
                            if (i1 < 0 || i1 >= I1) {
                                for (int64_t o2 = 0; o2 < O2; o2++) r[o2] = 0.0f;
                                continue;
                            }
                            const float *src = x + ((c * I0 + i0) * I1 + i1) * I2 + off2;
                            for (int64_t o2 = 0; o2 < lo; o2++) r[o2] = 0.0f;
                            if (s2 == 1) copy_run(r + lo, src + lo, hi - lo);
                            else for (int64_t o2 = lo; o2 < hi; o2++) r[o2] = src[o2 * s2];
                            for (int64_t o2 = hi; o2 < O2; o2++) r[o2] = 0.0f;
                        }
                    }
                }
}

/* col rows as im2col writes them (row stride ld) -> dx: (C, I0, I1, I2), adding into dx. */
static inline __attribute__((always_inline)) void col2im_add(const conv_geom *g, const float *restrict col,
                                                              int64_t ld, float *restrict dx) {
    const int64_t O0 = g->out[0], O1 = g->out[1], O2 = g->out[2];
    const int64_t I0 = g->in[0], I1 = g->in[1], I2 = g->in[2];
    const int64_t s2 = g->stride[2];
    const float *row = col;
    for (int64_t c = 0; c < g->c; c++)
        for (int64_t a = 0; a < g->k[0]; a++)
            for (int64_t b = 0; b < g->k[1]; b++)
                for (int64_t e = 0; e < g->k[2]; e++, row += ld) {
                    const int64_t off2 = e * g->dil[2] - g->pad[2];
                    int64_t lo, hi;
                    valid_range(off2, s2, I2, O2, &lo, &hi);
                    for (int64_t o0 = 0; o0 < O0; o0++) {
                        const int64_t i0 = o0 * g->stride[0] - g->pad[0] + a * g->dil[0];
                        if (i0 < 0 || i0 >= I0) continue;
                        for (int64_t o1 = 0; o1 < O1; o1++) {
                            const int64_t i1 = o1 * g->stride[1] - g->pad[1] + b * g->dil[1];
                            if (i1 < 0 || i1 >= I1) continue;
                            const float *r = row + (o0 * O1 + o1) * O2;
                            float *dst = dx + ((c * I0 + i0) * I1 + i1) * I2 + off2;
                            if (s2 == 1) add_run(dst + lo, r + lo, hi - lo);
                            else for (int64_t o2 = lo; o2 < hi; o2++) dst[o2 * s2] += r[o2];
                        }
                    }
                }
}

/* The im2col map of one sample as a table (see conv_state.idx); the same walk as im2col. */
static void im2col_table(const conv_geom *g, int32_t *tab) {
    const int64_t O0 = g->out[0], O1 = g->out[1], O2 = g->out[2];
    const int64_t I0 = g->in[0], I1 = g->in[1], I2 = g->in[2];
    int32_t *r = tab;
    for (int64_t c = 0; c < g->c; c++)
        for (int64_t a = 0; a < g->k[0]; a++)
            for (int64_t b = 0; b < g->k[1]; b++)
                for (int64_t e = 0; e < g->k[2]; e++)
                    for (int64_t o0 = 0; o0 < O0; o0++)
                        for (int64_t o1 = 0; o1 < O1; o1++)
                            for (int64_t o2 = 0; o2 < O2; o2++) {
                                const int64_t i0 = o0 * g->stride[0] - g->pad[0] + a * g->dil[0];
                                const int64_t i1 = o1 * g->stride[1] - g->pad[1] + b * g->dil[1];
                                const int64_t i2 = o2 * g->stride[2] - g->pad[2] + e * g->dil[2];
                                bool in = i0 >= 0 && i0 < I0 && i1 >= 0 && i1 < I1 && i2 >= 0 && i2 < I2;
                                *r++ = (int32_t)(in ? ((c * I0 + i0) * I1 + i1) * I2 + i2
                                                    : g->c * I0 * I1 * I2);
                            }
}

static void conv_free_tables(conv_state *st) {
    free(st->idx); free(st->inv_off); free(st->inv_r); free(st->inv_p); free(st->inv_q);
    st->idx = st->inv_off = st->inv_r = st->inv_p = NULL;
    st->inv_q = NULL;
}

/* Narrow or strided maps of small samples (see conv_state.idx; the table at most 256 Ki
 * entries) gather through a precomputed table, and col2im gathers through its inverse;
 * wide stride-1 rows are copied as runs (no tables). Needs st->g, nb, p_in, p_out. */
static int conv_tables(conv_state *st) {
    const conv_geom *g = &st->g;
    const int64_t rows = g->c * g->k[0] * g->k[1] * g->k[2], P = st->p_out;
    const int64_t nt = rows * P, xs = g->c * st->p_in;
    const bool narrow = g->out[2] < 8 || g->stride[2] != 1;
    if (st->direct || !narrow || nt > ((int64_t)1 << 18) || xs >= CONV_TABLE_X || nt == 0) return 0;
    int32_t *cursor = malloc((size_t)(xs + 1) * sizeof(int32_t));
    st->idx = malloc((size_t)nt * sizeof(int32_t));
    st->inv_off = calloc((size_t)xs + 2, sizeof(int32_t));
    st->inv_r = malloc((size_t)nt * sizeof(int32_t));
    st->inv_p = malloc((size_t)nt * sizeof(int32_t));
    st->inv_q = malloc((size_t)nt * sizeof(int64_t));
    if (!cursor || !st->idx || !st->inv_off || !st->inv_r || !st->inv_p || !st->inv_q) {
        free(cursor);
        conv_free_tables(st);
        return nl_error("out of memory");
    }
    im2col_table(g, st->idx);
    /* the inverse: table entries grouped by the offset they read, in table order */
    for (int64_t q = 0; q < nt; q++) st->inv_off[st->idx[q] + 1]++;
    for (int64_t i = 0; i <= xs; i++) st->inv_off[i + 1] += st->inv_off[i];
    memcpy(cursor, st->inv_off, (size_t)(xs + 1) * sizeof(int32_t));
    for (int64_t q = 0; q < nt; q++) {
        const int32_t k = cursor[st->idx[q]]++;
        st->inv_r[k] = (int32_t)(q / P);
        st->inv_p[k] = (int32_t)(q % P);
        st->inv_q[k] = (q / P) * st->nb * P + q % P;
        st->q_nb = st->nb;
    }
    free(cursor);
    return 0;
}

/* The problems conv_batchvec.c does better than im2col + GEMM (measured on the tutorial's
 * 8x8 digits: conv 1->4 and 4->8 channels, 3x3, 4x4 outputs, batch 64): one group, at most
 * two spatial axes, a batch of 8 or more (the vector axis), C*K*OC multiply-adds per output
 * position at most 1024 and at most 256 output positions per map. Larger ones (LeNet's) keep
 * the GEMM, which runs closer to the cores' peak. */
static int conv_choose_batchvec(conv_state *st) {
    const conv_geom *g = &st->g;
    st->batchvec = st->group == 1 && !st->direct && g->in[0] == 1 && g->k[0] == 1 && st->outer >= 8 &&
                   st->kg * st->oc <= 1024 && st->p_out <= 256 && st->p_in <= 4096;
    if (!st->batchvec) return 0;
    nl_cbv_geom *c = &st->cbv;
    c->n = st->outer;
    c->np = (st->outer + 7) / 8 * 8;
    c->c = g->c;
    c->oc = st->oc;
    for (int i = 0; i < 2; i++) {
        c->in[i] = g->in[1 + i];
        c->out[i] = g->out[1 + i];
        c->k[i] = g->k[1 + i];
        c->stride[i] = g->stride[1 + i];
        c->pad[i] = g->pad[1 + i];
        c->dil[i] = g->dil[1 + i];
    }
    return nl_cbv_tables(c);
}

static int conv_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0), *w = nl_in(f, 1), *bias = f->in[2];
    char xs[160], ws[160], bs[160];
    nl_shape_str(xs, x->ndim, x->shape);
    nl_shape_str(ws, w->ndim, w->shape);
    if (nl_arg_bool(f, A_CHANNEL_LAST))
        return nl_error("channel_last = true is not done by the engine (its kernels are channel-first): the Lua wrapper F.* moves the channel axis around the call");
    int ca, sd;
    const int64_t base_axis = nl_arg_int(f, A_BASE_AXIS);
    if (nl_conv_channel_axis(f, base_axis, xs, SD, &ca, &sd)) return -1;
    if (w->ndim != 2 + sd)
        return nl_error("weight %s must have %d dimensions (out_channels, in_channels/group, "
                        "kernel...) for x %s with %d spatial axes at base_axis %lld",
                        ws, 2 + sd, xs, sd, (long long)base_axis);
    const int64_t group = nl_arg_int(f, A_GROUP);
    if (group < 1) return nl_error("group must be 1 or more, got %lld", (long long)group);
    const int64_t c = x->shape[ca], oc = w->shape[0];
    if (c < 1 || oc < 1)
        return nl_error("x %s has %lld channels and weight %s %lld output channels "
                        "(both must be 1 or more)", xs, (long long)c, ws, (long long)oc);
    if (c % group)
        return nl_error("x %s has %lld channels (axis %d), not divisible by group %lld",
                        xs, (long long)c, ca + 1, (long long)group);
    if (oc % group)
        return nl_error("weight %s has %lld output channels, not divisible by group %lld",
                        ws, (long long)oc, (long long)group);
    if (w->shape[1] != c / group)
        return nl_error("weight %s has %lld input channels per group but x %s has %lld "
                        "channels (axis %d) and group %lld, so %lld per group",
                        ws, (long long)w->shape[1], xs, (long long)c, ca + 1,
                        (long long)group, (long long)(c / group));
    if (bias && (bias->ndim != 1 || bias->shape[0] != oc))
        return nl_error("bias has shape %s but weight %s has %lld output channels (expected {%lld})",
                        nl_shape_str(bs, bias->ndim, bias->shape), ws, (long long)oc, (long long)oc);

    int64_t pad[SD], stride[SD], dil[SD];
    if (nl_conv_list_arg(f, A_PAD, "pad", sd, 0, 0, xs, pad)) return -1;
    if (nl_conv_list_arg(f, A_STRIDE, "stride", sd, 1, 1, xs, stride)) return -1;
    if (nl_conv_list_arg(f, A_DILATION, "dilation", sd, 1, 1, xs, dil)) return -1;

    conv_state st = {0};
    st.oc = oc;
    st.group = group;
    st.outer = 1;
    for (int d = 0; d < ca; d++) st.outer *= x->shape[d];
    st.g.c = c;
    int64_t oshape[NL_MAX_NDIM];
    for (int d = 0; d <= ca; d++) oshape[d] = x->shape[d];
    oshape[ca] = oc;
    const int lead = SD - sd;
    for (int i = 0; i < SD; i++) {
        st.g.in[i] = st.g.out[i] = st.g.k[i] = st.g.stride[i] = st.g.dil[i] = 1;
        st.g.pad[i] = 0;
    }
    for (int i = 0; i < sd; i++) {
        const int64_t in = x->shape[ca + 1 + i], k = w->shape[2 + i];
        int64_t o = 0;
        if (nl_conv_out_size(in, k, pad[i], stride[i], dil[i], i, ca, xs, ws, &o)) return -1;
        oshape[ca + 1 + i] = o;
        st.g.in[lead + i] = in;
        st.g.out[lead + i] = o;
        st.g.k[lead + i] = k;
        st.g.pad[lead + i] = pad[i];
        st.g.stride[lead + i] = stride[i];
        st.g.dil[lead + i] = dil[i];
    }
    if (nl_check_out_size("y", x->ndim, oshape)) return -1;
    st.ocg = oc / group;
    st.kg = c / group;
    st.p_in = st.p_out = 1;
    st.direct = true;
    for (int i = 0; i < SD; i++) {
        st.kg *= st.g.k[i];
        st.p_in *= st.g.in[i];
        /* saturated: huge pads give output sizes whose product overflows int64 */
        st.p_out = st.g.out[i] != 0 && st.p_out > INT64_MAX / st.g.out[i] ? INT64_MAX : st.p_out * st.g.out[i];
        if (st.g.k[i] != 1 || st.g.stride[i] != 1 || st.g.pad[i] != 0) st.direct = false;
    }
    if (st.kg > INT_MAX || st.p_out > INT_MAX || st.ocg > INT_MAX ||
        (double)st.kg * (double)group * (double)st.p_out > (double)INT64_MAX / 8)
        return nl_error("x %s with weight %s is too large for the GEMM lowering", xs, ws);
    nl_set_out_shape(f, 0, x->ndim, oshape);
    /* Chunks of samples whose column buffer stays around 1 MiB (at least one sample);
     * 1x1 convolutions read x in place, one sample at a time. */
    const int64_t per_sample = st.kg * group * st.p_out;
    st.nb = per_sample > 0 ? ((int64_t)1 << 18) / per_sample : 1;
    if (st.nb < 1 || st.direct) st.nb = 1;
    if (st.nb > st.outer) st.nb = st.outer > 0 ? st.outer : 1;
    if ((double)st.nb * (double)st.p_out > (double)INT_MAX) st.nb = 1;

    if (conv_choose_batchvec(&st)) return -1;
    if (!st.batchvec && conv_tables(&st)) return -1;

    conv_state *s = malloc(sizeof *s);
    if (!s) { conv_free_tables(&st); nl_cbv_free(&st.cbv); return nl_error("out of memory"); }
    *s = st;
    f->state = s;
    return 0;
}

static void conv_destroy(nl_func *f) {
    conv_state *st = f->state;
    if (st) { conv_free_tables(st); nl_cbv_free(&st->cbv); }
    free(st);
}

/* ---- batched lowering -------------------------------------------------------------
 * Samples are processed in chunks of up to st->nb: a chunk's columns sit side by side in
 * one column buffer (Kg*G rows of nb*P values), so that each group needs one GEMM per
 * chunk instead of one per sample (the tutorial's convolutions have P = 16 outputs per
 * map). With nb > 1, outputs go through a (OC, nb*P) buffer that is scattered into
 * y (N, OC, P), and output gradients are gathered into it. Chunks are independent tasks:
 * with several threads each thread takes whole chunks with its own buffers (and its own
 * dW, summed at the end), and BLAS runs single-threaded inside; a single chunk runs on the
 * calling thread with OpenBLAS's threads. */

typedef struct conv_run {
    const conv_state *st;
    const float *x, *w, *b, *dy;
    float *y, *dx, *dw;
    float *col, *t, *dwp;     /* per-thread buffers: col_n, t_n, dw_n floats each */
    float *kept;              /* the batch's columns, chunk k at k * col_n (or NULL) */
    bool use_kept;            /* backward: kept holds x's columns */
    int64_t col_n, t_n, dw_n;
    int64_t nb;               /* samples per chunk (the last may have fewer) */
    int threads;
    bool prop_x, prop_w, accum_x, accum_w;
} conv_run;

/* x (nb samples) -> col (Kg*G, nb*P) */
/* im2col copies and zeroes runs of a few values: inline loops, not calls (NL_NO_MEMCALLS) */
static NL_SIMD_CLONES NL_NO_MEMCALLS void im2col_chunk(const conv_state *st, const float *x, float *col, int64_t nb) {
    const int64_t xsz = st->g.c * st->p_in, P = st->p_out, ld = nb * P;
    if (!st->idx) {
        for (int64_t j = 0; j < nb; j++) im2col(&st->g, x + j * xsz, col + j * P, ld);
        return;
    }
    const int64_t rows = st->kg * st->group;
    float xp[CONV_TABLE_X + 1];   /* the sample and a zero for the padding */
    xp[xsz] = 0.0f;
    for (int64_t j = 0; j < nb; j++) {
        memcpy(xp, x + j * xsz, (size_t)xsz * sizeof(float));
        for (int64_t r = 0; r < rows; r++) {
            const int32_t *restrict ir = st->idx + r * P;
            float *restrict d = col + r * ld + j * P;
            for (int64_t p = 0; p < P; p++) d[p] = xp[ir[p]];
        }
    }
}

/* col (Kg*G, nb*P) -> dx (nb, C, I...), overwriting or adding */
static void col2im_chunk(const conv_state *st, const float *col, float *dx, int64_t nb, bool accum) {
    const int64_t xsz = st->g.c * st->p_in, P = st->p_out, ld = nb * P;
    for (int64_t j = 0; j < nb; j++) {
        float *restrict dxn = dx + j * xsz;
        if (!st->idx) {
            if (!accum) memset(dxn, 0, (size_t)xsz * sizeof(float));
            col2im_add(&st->g, col + j * P, ld, dxn);
            continue;
        }
        /* each input offset sums the column entries that read it (no scatter conflicts) */
        const float *restrict cj = col + j * P;
        const int32_t *restrict off = st->inv_off;
        if (nb == st->q_nb) {
            const int64_t *restrict q = st->inv_q;
            if (accum)
                for (int64_t i = 0; i < xsz; i++) {
                    float s = 0.0f;
                    for (int32_t k = off[i]; k < off[i + 1]; k++) s += cj[q[k]];
                    dxn[i] += s;
                }
            else
                for (int64_t i = 0; i < xsz; i++) {
                    float s = 0.0f;
                    for (int32_t k = off[i]; k < off[i + 1]; k++) s += cj[q[k]];
                    dxn[i] = s;
                }
            continue;
        }
        for (int64_t i = 0; i < xsz; i++) {   /* a shorter chunk */
            float s = 0.0f;
            for (int32_t k = off[i]; k < off[i + 1]; k++) s += cj[st->inv_r[k] * ld + st->inv_p[k]];
            dxn[i] = accum ? dxn[i] + s : s;
        }
    }
}

/* The chunk of task k: samples [*n0, *n0 + return value). */
static int64_t chunk_of(const conv_run *r, int64_t k, int64_t *n0) {
    *n0 = k * r->nb;
    const int64_t left = r->st->outer - *n0;
    return left < r->nb ? left : r->nb;
}

/* y (+ bias) for one chunk: y_g (OC/G, nb*P) = w_g (OC/G, Kg) col_g (Kg, nb*P) */
static NL_SIMD_CLONES void conv_fwd_task(int64_t k, int thread, void *vr) {
    const conv_run *r = vr;
    const conv_state *st = r->st;
    const int ocg = (int)st->ocg, kg = (int)st->kg;
    const int64_t P = st->p_out, xsz = st->g.c * st->p_in, ysz = st->oc * P;
    int64_t n0;
    const int64_t nb = chunk_of(r, k, &n0);
    const int np = (int)(nb * P);
    const float *x = r->x + n0 * xsz;
    float *y = r->y + n0 * ysz, *col = r->col + thread * r->col_n, *t = r->t + thread * r->t_n;
    if (r->kept) col = r->kept + k * r->col_n;
    if (!st->direct) im2col_chunk(st, x, col, nb);
    const float *cn = st->direct ? x : col;   /* direct: nb == 1 */
    float *out = nb > 1 ? t : y;
    if (nb == 1 && r->b)
        for (int64_t o = 0; o < st->oc; o++)
            for (int64_t i = 0; i < P; i++) out[o * P + i] = r->b[o];
    for (int64_t g = 0; g < st->group; g++)
        nl_sgemm(false, false, ocg, np, kg,
                    1.0f, r->w + g * ocg * kg, kg, cn + g * kg * np, np,
                    (nb == 1 && r->b) ? 1.0f : 0.0f, out + g * ocg * np, np);
    if (nb == 1) return;
    for (int64_t j = 0; j < nb; j++)   /* t (OC, nb*P) (+ bias) -> y (nb, OC, P) */
        for (int64_t o = 0; o < st->oc; o++) {
            const float *restrict src = t + o * np + j * P;
            float *restrict dst = y + (j * st->oc + o) * P;
            const float bo = r->b ? r->b[o] : 0.0f;
            for (int64_t i = 0; i < P; i++) dst[i] = src[i] + bo;
        }
}

/* dW (this thread's, or dw itself with one thread) and dx for one chunk */
static NL_SIMD_CLONES void conv_bwd_task(int64_t k, int thread, void *vr) {
    const conv_run *r = vr;
    const conv_state *st = r->st;
    const int ocg = (int)st->ocg, kg = (int)st->kg;
    const int64_t P = st->p_out, xsz = st->g.c * st->p_in, ysz = st->oc * P;
    int64_t n0;
    const int64_t nb = chunk_of(r, k, &n0);
    const int np = (int)(nb * P);
    float *col = r->col + thread * r->col_n, *t = r->t + thread * r->t_n;
    const float *dyc = r->dy + n0 * ysz;
    if (nb > 1) {   /* dy (nb, OC, P) -> t (OC, nb*P) */
        for (int64_t j = 0; j < nb; j++)
            for (int64_t o = 0; o < st->oc; o++) {
                const float *restrict src = dyc + (j * st->oc + o) * P;
                float *restrict dst = t + o * np + j * P;
                for (int64_t i = 0; i < P; i++) dst[i] = src[i];
            }
        dyc = t;
    }
    if (r->prop_w) {
        const float *x = r->x + n0 * xsz, *cn = col;
        if (st->direct) cn = x;
        else if (r->use_kept) cn = r->kept + k * r->col_n;
        else im2col_chunk(st, x, col, nb);
        float *dw;
        float beta;
        if (r->threads > 1) {   /* the thread's first task starts its partial sum */
            dw = r->dwp + thread * r->dw_n;
            beta = k < r->threads ? 0.0f : 1.0f;
        } else {
            dw = r->dw;
            beta = (k == 0 && !r->accum_w) ? 0.0f : 1.0f;
        }
        for (int64_t g = 0; g < st->group; g++)
            nl_sgemm(false, true, ocg, kg, np,
                        1.0f, dyc + g * ocg * np, np, cn + g * kg * np, np,
                        beta, dw + g * ocg * kg, kg);
    }
    if (r->prop_x) {
        float *dxc = r->dx + n0 * xsz;
        if (st->direct) {   /* nb == 1: dx_g = w_g^T dy_g directly */
            for (int64_t g = 0; g < st->group; g++)
                nl_sgemm(true, false, kg, np, ocg,
                            1.0f, r->w + g * ocg * kg, kg, dyc + g * ocg * np, np,
                            r->accum_x ? 1.0f : 0.0f, dxc + g * kg * np, np);
            return;
        }
        for (int64_t g = 0; g < st->group; g++)
            nl_sgemm(true, false, kg, np, ocg,
                        1.0f, r->w + g * ocg * kg, kg, dyc + g * ocg * np, np,
                        0.0f, col + g * kg * np, np);
        col2im_chunk(st, col, dxc, nb, r->accum_x);
    }
}

/* Chunking and threads for this call; sizes the per-thread buffers (node scratch: 0 col,
 * 1 t, 2 dW partials) and the col2im table for the chunk size. */
static int conv_plan(nl_func *f, conv_run *r, bool need_dwp) {
    conv_state *st = f->state;
    const int64_t P = st->p_out, rows = st->kg * st->group;
    int64_t n_chunks = (st->outer + st->nb - 1) / st->nb;
    /* threads pay from about a million multiply-adds each (the tutorial's convolutions stay
     * on one thread; LeNet's split): work in units of ~32 multiply-adds */
    int threads = nl_parallel_threads(st->outer * rows * P * (st->oc + 8) / 32);
    if (threads > n_chunks && st->outer >= threads) n_chunks = threads;   /* a share each */
    if (threads > 1 && n_chunks % threads) n_chunks += threads - n_chunks % threads;
    if (n_chunks > st->outer) n_chunks = st->outer > 0 ? st->outer : 1;
    if (threads > n_chunks) threads = (int)n_chunks;
    r->st = st;
    r->nb = st->outer > 0 ? (st->outer + n_chunks - 1) / n_chunks : 1;
    r->threads = threads;
    r->col_n = st->direct ? 0 : rows * r->nb * P;
    r->t_n = r->nb > 1 ? st->oc * r->nb * P : 0;
    r->dw_n = need_dwp && threads > 1 ? st->oc * st->kg : 0;
    r->col = nl_func_scratch(f, 0, threads * r->col_n + 1);
    r->t = nl_func_scratch(f, 1, threads * r->t_n + 1);
    r->dwp = nl_func_scratch(f, 2, threads * r->dw_n + 1);
    if (!r->col || !r->t || !r->dwp) return nl_error("out of memory for the convolution buffers");
    if (st->idx && st->q_nb != r->nb) {   /* col2im offsets for this chunk size */
        const int64_t nt = rows * P;
        for (int64_t q = 0; q < nt; q++) st->inv_q[q] = st->inv_r[q] * r->nb * P + st->inv_p[q];
        st->q_nb = r->nb;
    }
    return 0;
}

/* x: (B, C, I...), w: (OC, C/G, K...), b: (OC) -> y: (B, OC, O...) */
static int conv_forward(nl_func *f) {
    conv_run r = {0};
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(const float *, w, nl_in_data(f, 1));
    NL_PTR(float *, y, nl_out_data(f, 0));
    if (f->in[2] && !(r.b = nl_in_data(f, 2))) return -1;
    conv_state *cs = f->state;
    if (cs->batchvec) {
        float *work = nl_func_scratch(f, 0, nl_cbv_work(&cs->cbv));
        if (!work) return nl_error("out of memory for the convolution buffers");
        nl_cbv_forward(&cs->cbv, x, w, r.b, y, work);
        return 0;
    }
    if (conv_plan(f, &r, false)) return -1;
    r.x = x; r.w = w; r.y = y;
    conv_state *st = f->state;
    const int64_t n_chunks = st->outer > 0 ? (st->outer + r.nb - 1) / r.nb : 0;
    st->kept_x = NULL;
    if (f->training && nl_in(f, 1)->need_grad && !st->direct &&
        n_chunks * r.col_n * (int64_t)sizeof(float) <= CONV_KEEP_BYTES) {
        if (!(r.kept = nl_func_scratch(f, 3, n_chunks * r.col_n + 1)))
            return nl_error("out of memory for the convolution buffers");
    }
    nl_parallel_tasks(n_chunks, r.threads, conv_fwd_task, &r);
    if (r.kept) {
        st->kept_x = nl_in(f, 0)->data;
        st->kept_version = nl_array_version(st->kept_x);
        st->kept_nb = r.nb;
    }
    return 0;
}

typedef struct conv_db_ctx { const conv_state *st; const float *dy; float *db; bool accum; } conv_db_ctx;

/* db[o] (+)= sum of dy (B, OC, P) over B and P, for channels [o0, o1) */
static void conv_db_range(int64_t o0, int64_t o1, void *vc) {
    const conv_db_ctx *c = vc;
    const int64_t P = c->st->p_out, ysz = c->st->oc * P;
    for (int64_t o = o0; o < o1; o++) {
        double s = 0;
        for (int64_t n = 0; n < c->st->outer; n++) s += nl_vsum(c->dy + n * ysz + o * P, P);
        c->db[o] = c->accum ? c->db[o] + (float)s : (float)s;
    }
}

/* dy: (B, OC, O...); db (OC) = sum of dy over B and O; dW_g (OC/G, Kg) = sum over chunks of
 * dy_g col_g^T; dcol_g = w_g^T dy_g, dx = col2im(dcol) */
static int conv_backward(nl_func *f, const bool *prop, const bool *accum) {
    const conv_state *st = f->state;
    const bool pb = f->in[2] && prop[2];
    if (!prop[0] && !prop[1] && !pb) return 0;
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    const int64_t P = st->p_out;
    if (pb) {
        NL_PTR(float *, db, nl_in_grad(f, 2, accum[2]));
        conv_db_ctx c = {st, dy, db, accum[2]};
        nl_parallel_for(st->oc, st->outer * P, conv_db_range, &c);
    }
    if (!prop[0] && !prop[1]) return 0;
    if (st->batchvec) {
        const float *x = NULL, *w = NULL;
        float *dx = NULL, *dw = NULL;
        if (prop[1] && (!(x = nl_in_data(f, 0)) || !(dw = nl_in_grad(f, 1, accum[1])))) return -1;
        if (prop[0] && (!(w = nl_in_data(f, 1)) || !(dx = nl_in_grad(f, 0, accum[0])))) return -1;
        float *work = nl_func_scratch(f, 0, nl_cbv_work(&st->cbv));
        if (!work) return nl_error("out of memory for the convolution buffers");
        nl_cbv_backward(&st->cbv, x, w, dy, dx, dw, accum[0], accum[1], work);
        return 0;
    }
    conv_run r = {0};
    if (conv_plan(f, &r, prop[1])) return -1;
    r.dy = dy;
    r.prop_x = prop[0];
    r.prop_w = prop[1];
    r.accum_x = accum[0];
    r.accum_w = accum[1];
    if (prop[1]) {
        if (!(r.x = nl_in_data(f, 0)) || !(r.dw = nl_in_grad(f, 1, accum[1]))) return -1;
        if (st->outer == 0 && !accum[1]) memset(r.dw, 0, (size_t)(st->oc * st->kg) * sizeof(float));
        if (st->kept_x && st->kept_x == nl_in(f, 0)->data && st->kept_nb == r.nb &&
            st->kept_version == nl_array_version(st->kept_x)) {
            r.kept = f->scratch[3];
            r.use_kept = true;
        }
    }
    if (prop[0] && (!(r.w = nl_in_data(f, 1)) || !(r.dx = nl_in_grad(f, 0, accum[0])))) return -1;
    const int64_t n_chunks = st->outer > 0 ? (st->outer + r.nb - 1) / r.nb : 0;
    nl_parallel_tasks(n_chunks, r.threads, conv_bwd_task, &r);
    if (prop[1] && r.threads > 1) {   /* dW = (dW +) the threads' partial sums */
        const int64_t n = r.dw_n;
        float *restrict dw = r.dw;
        for (int t = 0; t < r.threads; t++) {
            const float *restrict part = r.dwp + t * n;
            if (t == 0 && !accum[1]) memcpy(dw, part, (size_t)n * sizeof(float));
            else for (int64_t i = 0; i < n; i++) dw[i] += part[i];
        }
    }
    return 0;
}

const nl_fdef nl_fdef_convolution = {
    .name = "convolution",
    .doc = "N-d convolution (1 to 3 spatial axes): x (B..., C, I...), weight (OC, C/group, K...), "
           "bias (OC) -> y (B..., OC, O...)",
    .in_names = "x,weight,bias",
    .n_in = 2,
    .n_opt_in = 1,
    .n_out = 1,
    .n_args = 6,
    .args = conv_args,
    .setup = conv_setup,
    .forward = conv_forward,
    .backward = conv_backward,
    .destroy = conv_destroy,
    .grad_in_data = (1u << 0) | (1u << 1),   /* dW reads x, dx reads W */
    .grad_out_data = 0,
};
