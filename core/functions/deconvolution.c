/*
 * deconvolution.c - transposed and depthwise convolutions (1 to 3 spatial axes), with
 * NNabla's semantics (src/nbla/function/generic/{deconvolution,depthwise_convolution}.cpp):
 *
 *   deconvolution(x, weight, [bias], base_axis=2, pad=nil, stride=nil, dilation=nil,
 *                 group=1, channel_last=false, output_padding=nil)
 *     x: (B..., C, I...) with the channel axis at base_axis (Lua 1-based);
 *     weight: (C, OC/group, K...) -- NNabla's layout: the input channels first, as if
 *     the weight belonged to the convolution this one transposes; bias: (OC);
 *     y: (B..., OC, O...) with O = stride*(I-1) - 2*pad + dilation*(K-1) + 1 + output_padding
 *     (output_padding < stride). y is the gradient of convolution(y', weight) with
 *     respect to its input y': per sample and group, col = W_g^T x_g, y = col2im(col).
 *
 *   depthwise_convolution(x, weight, [bias], base_axis=2, pad=nil, stride=nil,
 *                         dilation=nil, multiplier=1)
 *     x: (B..., C, I...), weight: (C*multiplier, K...), bias: (C*multiplier);
 *     output channel c*multiplier + m reads input channel c only:
 *     y[n, c*M+m, o] = b[c*M+m] + sum_k w[c*M+m, k] x[n, c, o*stride - pad + k*dilation],
 *     O = (I + 2*pad - dilation*(K-1) - 1) / stride + 1. Direct loops, threaded over maps.
 *
 * pad/stride/dilation default to 0/1/1 per spatial axis. channel_last = true is done by
 * the Lua wrapper (lua/nnlua/functions.lua) with transposes. Internally 1-d and 2-d problems are 3-d ones with leading size-1 axes.
 */
#include "../src/function.h"
#include "conv_geometry.h"
#include "deconv_plan.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>

enum { SD = NL_DECONV_SD };

/* ---- geometry shared by both functions (the plans live in deconv_plan.h, which the
 * cuDNN implementations read too) ---- */

typedef nl_deconv_geom geom;

/* img: (C, img...) -> col: (C * K0 * K1 * K2, prod pos), zeros where a window reads padding */
static void im2col(const geom *g, const float *img, float *col) {
    const int64_t P0 = g->pos[0], P1 = g->pos[1], P2 = g->pos[2];
    const int64_t I0 = g->img[0], I1 = g->img[1], I2 = g->img[2];
    float *r = col;
    for (int64_t c = 0; c < g->c; c++)
        for (int64_t a = 0; a < g->k[0]; a++)
            for (int64_t b = 0; b < g->k[1]; b++)
                for (int64_t e = 0; e < g->k[2]; e++)
                    for (int64_t p0 = 0; p0 < P0; p0++) {
                        const int64_t i0 = p0 * g->stride[0] - g->pad[0] + a * g->dil[0];
                        for (int64_t p1 = 0; p1 < P1; p1++) {
                            const int64_t i1 = p1 * g->stride[1] - g->pad[1] + b * g->dil[1];
                            const bool row_ok = i0 >= 0 && i0 < I0 && i1 >= 0 && i1 < I1;
                            const float *src = img + ((c * I0 + i0) * I1 + i1) * I2;
                            for (int64_t p2 = 0; p2 < P2; p2++, r++) {
                                const int64_t i2 = p2 * g->stride[2] - g->pad[2] + e * g->dil[2];
                                *r = (row_ok && i2 >= 0 && i2 < I2) ? src[i2] : 0.0f;
                            }
                        }
                    }
}

/* col: (C * K0 * K1 * K2, prod pos) -> img: (C, img...), adding */
static void col2im_add(const geom *g, const float *col, float *img) {
    const int64_t P0 = g->pos[0], P1 = g->pos[1], P2 = g->pos[2];
    const int64_t I0 = g->img[0], I1 = g->img[1], I2 = g->img[2];
    const float *r = col;
    for (int64_t c = 0; c < g->c; c++)
        for (int64_t a = 0; a < g->k[0]; a++)
            for (int64_t b = 0; b < g->k[1]; b++)
                for (int64_t e = 0; e < g->k[2]; e++)
                    for (int64_t p0 = 0; p0 < P0; p0++) {
                        const int64_t i0 = p0 * g->stride[0] - g->pad[0] + a * g->dil[0];
                        for (int64_t p1 = 0; p1 < P1; p1++, r += P2) {
                            const int64_t i1 = p1 * g->stride[1] - g->pad[1] + b * g->dil[1];
                            if (i0 < 0 || i0 >= I0 || i1 < 0 || i1 >= I1) continue;
                            float *dst = img + ((c * I0 + i0) * I1 + i1) * I2;
                            for (int64_t p2 = 0; p2 < P2; p2++) {
                                const int64_t i2 = p2 * g->stride[2] - g->pad[2] + e * g->dil[2];
                                if (i2 >= 0 && i2 < I2) dst[i2] += r[p2];
                            }
                        }
                    }
}

/* Unit geometry (every slot 1, pad 0) with c image channels; oshape gets x's axes before
 * the channel axis ca, then oc (the spatial sizes are filled in by the caller). */
static void geom_start(geom *g, int64_t c, const nl_var *x, int ca, int64_t oc, int64_t *oshape) {
    g->c = c;
    for (int i = 0; i < SD; i++) {
        g->img[i] = g->pos[i] = g->k[i] = g->stride[i] = g->dil[i] = 1;
        g->pad[i] = 0;
    }
    for (int d = 0; d < ca; d++) oshape[d] = x->shape[d];
    oshape[ca] = oc;
}

/* ================================ deconvolution ================================ */

enum { D_BASE_AXIS, D_PAD, D_STRIDE, D_DILATION, D_GROUP, D_CHANNEL_LAST, D_OUTPUT_PADDING };

static const nl_argdef deconv_args[] = {
    {"base_axis", NL_ARG_INT, "2", NULL},
    {"pad", NL_ARG_INTS, "nil", NULL},
    {"stride", NL_ARG_INTS, "nil", NULL},
    {"dilation", NL_ARG_INTS, "nil", NULL},
    {"group", NL_ARG_INT, "1", NULL},
    {"channel_last", NL_ARG_BOOL, "false", NULL},
    {"output_padding", NL_ARG_INTS, "nil", NULL},
};

typedef nl_deconv_plan deconv_state;

static void free_state(nl_func *f) { free(f->state); }

static int deconv_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0), *w = nl_in(f, 1), *bias = f->in[2];
    char xs[160], ws[160], bs[160];
    nl_shape_str(xs, x->ndim, x->shape);
    nl_shape_str(ws, w->ndim, w->shape);
    if (nl_arg_bool(f, D_CHANNEL_LAST)) return nl_error("channel_last = true is not done by the engine (its kernels are channel-first): the Lua wrapper F.* moves the channel axis around the call");
    int ca, sd;
    const int64_t base_axis = nl_arg_int(f, D_BASE_AXIS);
    if (nl_conv_channel_axis(f, base_axis, xs, SD, &ca, &sd)) return -1;
    if (w->ndim != 2 + sd)
        return nl_error("weight %s must have %d dimensions (in_channels, out_channels/group, "
                        "kernel...) for x %s with %d spatial axes at base_axis %lld",
                        ws, 2 + sd, xs, sd, (long long)base_axis);
    const int64_t group = nl_arg_int(f, D_GROUP);
    if (group < 1) return nl_error("group must be 1 or more, got %lld", (long long)group);
    const int64_t c = x->shape[ca];
    if (w->shape[0] != c)
        return nl_error("weight %s has %lld input channels (its first axis) but x %s has %lld "
                        "channels (axis %d)", ws, (long long)w->shape[0], xs, (long long)c, ca + 1);
    if (c < 1 || w->shape[1] < 1)
        return nl_error("x %s and weight %s must have 1 or more channels", xs, ws);
    if (c % group)
        return nl_error("x %s has %lld channels (axis %d), not divisible by group %lld",
                        xs, (long long)c, ca + 1, (long long)group);
    const int64_t oc = w->shape[1] * group;
    if (bias && (bias->ndim != 1 || bias->shape[0] != oc))
        return nl_error("bias has shape %s but weight %s and group %lld give %lld output channels "
                        "(expected {%lld})", nl_shape_str(bs, bias->ndim, bias->shape), ws,
                        (long long)group, (long long)oc, (long long)oc);
    int64_t pad[SD], stride[SD], dil[SD], opad[SD];
    if (nl_conv_list_arg(f, D_PAD, "pad", sd, 0, 0, xs, pad)) return -1;
    if (nl_conv_list_arg(f, D_STRIDE, "stride", sd, 1, 1, xs, stride)) return -1;
    if (nl_conv_list_arg(f, D_DILATION, "dilation", sd, 1, 1, xs, dil)) return -1;
    if (nl_conv_list_arg(f, D_OUTPUT_PADDING, "output_padding", sd, 0, 0, xs, opad)) return -1;

    deconv_state st = {0};
    st.c = c; st.oc = oc; st.group = group;
    st.cg = c / group; st.ocg = oc / group;
    st.outer = 1;
    for (int d = 0; d < ca; d++) st.outer *= x->shape[d];
    int64_t oshape[NL_MAX_NDIM];
    geom_start(&st.g, oc, x, ca, oc, oshape);
    const int lead = SD - sd;
    for (int i = 0; i < sd; i++) {
        const int64_t in = x->shape[ca + 1 + i], k = w->shape[2 + i];
        if (k < 1)
            return nl_error("weight %s has kernel size %lld in spatial axis %d (must be 1 or more)",
                            ws, (long long)k, i + 1);
        if (in < 1)
            return nl_error("x %s has size %lld in spatial axis %d (must be 1 or more)", xs,
                            (long long)in, i + 1);
        if (opad[i] >= stride[i])
            return nl_error("output_padding entry %d is %lld but must be smaller than stride %lld",
                            i + 1, (long long)opad[i], (long long)stride[i]);
        const int64_t o = stride[i] * (in - 1) - 2 * pad[i] + dil[i] * (k - 1) + 1 + opad[i];
        if (o < 1)
            return nl_error("the output would have size %lld in spatial axis %d (stride %lld * "
                            "(x size %lld - 1) - 2*pad %lld + dilation %lld * (kernel %lld - 1) + 1 "
                            "+ output_padding %lld); x %s, weight %s",
                            (long long)o, i + 1, (long long)stride[i], (long long)in,
                            (long long)pad[i], (long long)dil[i], (long long)k, (long long)opad[i],
                            xs, ws);
        oshape[ca + 1 + i] = o;
        st.g.img[lead + i] = o;
        st.g.pos[lead + i] = in;
        st.g.k[lead + i] = k;
        st.g.pad[lead + i] = pad[i];
        st.g.stride[lead + i] = stride[i];
        st.g.dil[lead + i] = dil[i];
    }
    if (nl_check_out_size("y", x->ndim, oshape)) return -1;
    st.kk = st.p_x = st.p_y = 1;
    for (int i = 0; i < SD; i++) { st.kk *= st.g.k[i]; st.p_x *= st.g.pos[i]; st.p_y *= st.g.img[i]; }
    if (st.ocg * st.kk > INT_MAX || st.p_x > INT_MAX || st.cg > INT_MAX ||
        (double)st.oc * (double)st.kk * (double)st.p_x > (double)INT64_MAX / 8)
        return nl_error("x %s with weight %s is too large for the GEMM lowering", xs, ws);
    nl_set_out_shape(f, 0, x->ndim, oshape);
    deconv_state *s = malloc(sizeof *s);
    if (!s) return nl_error("out of memory");
    *s = st;
    f->state = s;
    return 0;
}

/* x: (B, C, P), w: (C, OC/G * K) per group rows -> col: (OC * K, P) -> y: (B, OC, O...) */
static int deconv_forward(nl_func *f) {
    const deconv_state *st = f->state;
    const int m = (int)(st->ocg * st->kk), p = (int)st->p_x, kc = (int)st->cg;
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(const float *, w, nl_in_data(f, 1));
    NL_PTR(float *, y, nl_out_data(f, 0));
    const float *b = NULL;
    if (f->in[2]) { b = nl_in_data(f, 2); if (!b) return -1; }
    float *col = nl_func_scratch(f, 0, st->oc * st->kk * st->p_x);
    if (!col) return nl_error("out of memory for the column buffer");
    for (int64_t n = 0; n < st->outer; n++) {
        const float *xn = x + n * st->c * st->p_x;
        float *yn = y + n * st->oc * st->p_y;
        for (int64_t g = 0; g < st->group; g++)
            nl_sgemm(true, false, m, p, kc,
                        1.0f, w + g * kc * m, m, xn + g * kc * p, p,
                        0.0f, col + g * m * p, p);
        for (int64_t o = 0; o < st->oc; o++) {
            const float v = b ? b[o] : 0.0f;
            for (int64_t i = 0; i < st->p_y; i++) yn[o * st->p_y + i] = v;
        }
        col2im_add(&st->g, col, yn);
    }
    return 0;
}

/* dy: (B, OC, O...); col = im2col(dy); dx_g = W_g col_g; dW_g += x_g col_g^T; db = sum dy */
static int deconv_backward(nl_func *f, const bool *prop, const bool *accum) {
    const deconv_state *st = f->state;
    const int m = (int)(st->ocg * st->kk), p = (int)st->p_x, kc = (int)st->cg;
    const bool pb = f->in[2] && prop[2];
    if (!prop[0] && !prop[1] && !pb) return 0;
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    if (pb) {
        NL_PTR(float *, db, nl_in_grad(f, 2, accum[2]));
        for (int64_t o = 0; o < st->oc; o++) {
            double s = 0;
            for (int64_t n = 0; n < st->outer; n++) {
                const float *r = dy + (n * st->oc + o) * st->p_y;
                for (int64_t i = 0; i < st->p_y; i++) s += r[i];
            }
            db[o] = accum[2] ? db[o] + (float)s : (float)s;
        }
    }
    if (!prop[0] && !prop[1]) return 0;
    float *col = nl_func_scratch(f, 0, st->oc * st->kk * st->p_x);
    if (!col) return nl_error("out of memory for the column buffer");
    const float *x = NULL, *w = NULL;
    float *dx = NULL, *dw = NULL;
    if (prop[0]) {
        if (!(w = nl_in_data(f, 1)) || !(dx = nl_in_grad(f, 0, accum[0]))) return -1;
    }
    if (prop[1]) {
        if (!(x = nl_in_data(f, 0)) || !(dw = nl_in_grad(f, 1, accum[1]))) return -1;
        if (!accum[1]) memset(dw, 0, (size_t)nl_in(f, 1)->size * sizeof(float));
    }
    for (int64_t n = 0; n < st->outer; n++) {
        im2col(&st->g, dy + n * st->oc * st->p_y, col);
        for (int64_t g = 0; g < st->group; g++) {
            if (prop[0])
                nl_sgemm(false, false, kc, p, m,
                            1.0f, w + g * kc * m, m, col + g * m * p, p,
                            accum[0] ? 1.0f : 0.0f, dx + (n * st->c + g * kc) * p, p);
            if (prop[1])
                nl_sgemm(false, true, kc, m, p,
                            1.0f, x + (n * st->c + g * kc) * p, p, col + g * m * p, p,
                            1.0f, dw + g * kc * m, m);
        }
    }
    return 0;
}

const nl_fdef nl_fdef_deconvolution = {
    .name = "deconvolution",
    .doc = "N-d transposed convolution (1 to 3 spatial axes): x (B..., C, I...), weight "
           "(C, OC/group, K...), bias (OC) -> y (B..., OC, O...), "
           "O = stride*(I-1) - 2*pad + dilation*(K-1) + 1 + output_padding",
    .in_names = "x,weight,bias",
    .n_in = 2,
    .n_opt_in = 1,
    .n_out = 1,
    .n_args = 7,
    .args = deconv_args,
    .setup = deconv_setup,
    .forward = deconv_forward,
    .backward = deconv_backward,
    .destroy = free_state,
    .grad_in_data = (1u << 0) | (1u << 1),
    .grad_out_data = 0,
};

/* ============================ depthwise convolution ============================ */

enum { W_BASE_AXIS, W_PAD, W_STRIDE, W_DILATION, W_MULTIPLIER };

static const nl_argdef dw_args[] = {
    {"base_axis", NL_ARG_INT, "2", NULL},
    {"pad", NL_ARG_INTS, "nil", NULL},
    {"stride", NL_ARG_INTS, "nil", NULL},
    {"dilation", NL_ARG_INTS, "nil", NULL},
    {"multiplier", NL_ARG_INT, "1", NULL},
};

typedef nl_dwconv_plan dw_state;

static int dw_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0), *w = nl_in(f, 1), *bias = f->in[2];
    char xs[160], ws[160], bs[160];
    nl_shape_str(xs, x->ndim, x->shape);
    nl_shape_str(ws, w->ndim, w->shape);
    int ca, sd;
    const int64_t base_axis = nl_arg_int(f, W_BASE_AXIS);
    if (nl_conv_channel_axis(f, base_axis, xs, SD, &ca, &sd)) return -1;
    const int64_t mult = nl_arg_int(f, W_MULTIPLIER);
    if (mult < 1) return nl_error("multiplier must be 1 or more, got %lld", (long long)mult);
    if (w->ndim != 1 + sd)
        return nl_error("weight %s must have %d dimensions (channels*multiplier, kernel...) for x %s "
                        "with %d spatial axes at base_axis %lld", ws, 1 + sd, xs, sd, (long long)base_axis);
    const int64_t c = x->shape[ca], oc = c * mult;
    if (w->shape[0] != oc)
        return nl_error("weight %s has %lld output channels but x %s has %lld channels (axis %d) "
                        "and multiplier %lld, so %lld are needed", ws, (long long)w->shape[0], xs,
                        (long long)c, ca + 1, (long long)mult, (long long)oc);
    if (bias && (bias->ndim != 1 || bias->shape[0] != oc))
        return nl_error("bias has shape %s but there are %lld output channels (expected {%lld})",
                        nl_shape_str(bs, bias->ndim, bias->shape), (long long)oc, (long long)oc);
    int64_t pad[SD], stride[SD], dil[SD];
    if (nl_conv_list_arg(f, W_PAD, "pad", sd, 0, 0, xs, pad)) return -1;
    if (nl_conv_list_arg(f, W_STRIDE, "stride", sd, 1, 1, xs, stride)) return -1;
    if (nl_conv_list_arg(f, W_DILATION, "dilation", sd, 1, 1, xs, dil)) return -1;
    dw_state st = {0};
    st.c = c; st.mult = mult; st.oc = oc;
    st.outer = 1;
    for (int d = 0; d < ca; d++) st.outer *= x->shape[d];
    int64_t oshape[NL_MAX_NDIM];
    geom_start(&st.g, c, x, ca, oc, oshape);
    const int lead = SD - sd;
    for (int i = 0; i < sd; i++) {
        const int64_t in = x->shape[ca + 1 + i], k = w->shape[1 + i];
        int64_t o = 0;
        if (nl_conv_out_size(in, k, pad[i], stride[i], dil[i], i, ca, xs, ws, &o)) return -1;
        oshape[ca + 1 + i] = o;
        st.g.img[lead + i] = in;
        st.g.pos[lead + i] = o;
        st.g.k[lead + i] = k;
        st.g.pad[lead + i] = pad[i];
        st.g.stride[lead + i] = stride[i];
        st.g.dil[lead + i] = dil[i];
    }
    if (nl_check_out_size("y", x->ndim, oshape)) return -1;
    st.kk = st.p_x = st.p_y = 1;
    for (int i = 0; i < SD; i++) { st.kk *= st.g.k[i]; st.p_x *= st.g.img[i]; st.p_y *= st.g.pos[i]; }
    nl_set_out_shape(f, 0, x->ndim, oshape);
    dw_state *s = malloc(sizeof *s);
    if (!s) return nl_error("out of memory");
    *s = st;
    f->state = s;
    return 0;
}

typedef struct dw_ctx {
    const dw_state *st;
    const float *x, *w, *b, *dy;
    float *y, *dx, *dw;
    bool accum;
} dw_ctx;

/* For kernel tap (a, b, e) and output position o: the input offset in the map, or -1. */
static inline int64_t dw_tap(const geom *g, int64_t a, int64_t b, int64_t e,
                             int64_t p0, int64_t p1, int64_t p2) {
    const int64_t i0 = p0 * g->stride[0] - g->pad[0] + a * g->dil[0];
    const int64_t i1 = p1 * g->stride[1] - g->pad[1] + b * g->dil[1];
    const int64_t i2 = p2 * g->stride[2] - g->pad[2] + e * g->dil[2];
    if (i0 < 0 || i0 >= g->img[0] || i1 < 0 || i1 >= g->img[1] || i2 < 0 || i2 >= g->img[2]) return -1;
    return (i0 * g->img[1] + i1) * g->img[2] + i2;
}

/* items: (n, oc) output maps; y[n, oc] = b[oc] + sum_k w[oc, k] x[n, oc / M](window) */
static void dw_fwd_range(int64_t i0, int64_t i1, void *vctx) {
    const dw_ctx *c = vctx;
    const dw_state *st = c->st;
    const geom *g = &st->g;
    for (int64_t it = i0; it < i1; it++) {
        const int64_t n = it / st->oc, oc = it % st->oc, ch = oc / st->mult;
        const float *xm = c->x + (n * st->c + ch) * st->p_x;
        const float *wk = c->w + oc * st->kk;
        float *ym = c->y + it * st->p_y;
        const float bv = c->b ? c->b[oc] : 0.0f;
        for (int64_t q = 0; q < st->p_y; q++) ym[q] = bv;
        int64_t t = 0;
        for (int64_t a = 0; a < g->k[0]; a++)
            for (int64_t b = 0; b < g->k[1]; b++)
                for (int64_t e = 0; e < g->k[2]; e++, t++) {
                    const float wv = wk[t];
                    float *yq = ym;
                    for (int64_t p0 = 0; p0 < g->pos[0]; p0++)
                        for (int64_t p1 = 0; p1 < g->pos[1]; p1++)
                            for (int64_t p2 = 0; p2 < g->pos[2]; p2++, yq++) {
                                const int64_t off = dw_tap(g, a, b, e, p0, p1, p2);
                                if (off >= 0) *yq += wv * xm[off];
                            }
                }
    }
}

static int dw_forward(nl_func *f) {
    const dw_state *st = f->state;
    dw_ctx c = {.st = st};
    if (!(c.x = nl_in_data(f, 0)) || !(c.w = nl_in_data(f, 1)) || !(c.y = nl_out_data(f, 0))) return -1;
    if (f->in[2] && !(c.b = nl_in_data(f, 2))) return -1;
    nl_parallel_for(st->outer * st->oc, st->p_y * st->kk, dw_fwd_range, &c);
    return 0;
}

/* items: (n, c) input maps; dx[n, c] (+)= sum over its M output maps of w^T dy */
static void dw_bwd_x_range(int64_t i0, int64_t i1, void *vctx) {
    const dw_ctx *c = vctx;
    const dw_state *st = c->st;
    const geom *g = &st->g;
    for (int64_t it = i0; it < i1; it++) {
        const int64_t n = it / st->c, ch = it % st->c;
        float *dxm = c->dx + it * st->p_x;
        if (!c->accum) memset(dxm, 0, (size_t)st->p_x * sizeof(float));
        for (int64_t m = 0; m < st->mult; m++) {
            const int64_t oc = ch * st->mult + m;
            const float *dym = c->dy + (n * st->oc + oc) * st->p_y;
            const float *wk = c->w + oc * st->kk;
            int64_t t = 0;
            for (int64_t a = 0; a < g->k[0]; a++)
                for (int64_t b = 0; b < g->k[1]; b++)
                    for (int64_t e = 0; e < g->k[2]; e++, t++) {
                        const float wv = wk[t];
                        const float *dq = dym;
                        for (int64_t p0 = 0; p0 < g->pos[0]; p0++)
                            for (int64_t p1 = 0; p1 < g->pos[1]; p1++)
                                for (int64_t p2 = 0; p2 < g->pos[2]; p2++, dq++) {
                                    const int64_t off = dw_tap(g, a, b, e, p0, p1, p2);
                                    if (off >= 0) dxm[off] += wv * *dq;
                                }
                    }
        }
    }
}

/* items: output channels oc; dw[oc, k] (+)= sum_n sum_o dy[n, oc, o] x[n, oc/M, window] */
static void dw_bwd_w_range(int64_t i0, int64_t i1, void *vctx) {
    const dw_ctx *c = vctx;
    const dw_state *st = c->st;
    const geom *g = &st->g;
    for (int64_t oc = i0; oc < i1; oc++) {
        const int64_t ch = oc / st->mult;
        float *dwk = c->dw + oc * st->kk;
        int64_t t = 0;
        for (int64_t a = 0; a < g->k[0]; a++)
            for (int64_t b = 0; b < g->k[1]; b++)
                for (int64_t e = 0; e < g->k[2]; e++, t++) {
                    double s = 0;
                    for (int64_t n = 0; n < st->outer; n++) {
                        const float *xm = c->x + (n * st->c + ch) * st->p_x;
                        const float *dq = c->dy + (n * st->oc + oc) * st->p_y;
                        for (int64_t p0 = 0; p0 < g->pos[0]; p0++)
                            for (int64_t p1 = 0; p1 < g->pos[1]; p1++)
                                for (int64_t p2 = 0; p2 < g->pos[2]; p2++, dq++) {
                                    const int64_t off = dw_tap(g, a, b, e, p0, p1, p2);
                                    if (off >= 0) s += (double)*dq * xm[off];
                                }
                    }
                    dwk[t] = c->accum ? dwk[t] + (float)s : (float)s;
                }
    }
}

static int dw_backward(nl_func *f, const bool *prop, const bool *accum) {
    const dw_state *st = f->state;
    const bool pb = f->in[2] && prop[2];
    if (!prop[0] && !prop[1] && !pb) return 0;
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    if (pb) {
        NL_PTR(float *, db, nl_in_grad(f, 2, accum[2]));
        for (int64_t o = 0; o < st->oc; o++) {
            double s = 0;
            for (int64_t n = 0; n < st->outer; n++) {
                const float *r = dy + (n * st->oc + o) * st->p_y;
                for (int64_t i = 0; i < st->p_y; i++) s += r[i];
            }
            db[o] = accum[2] ? db[o] + (float)s : (float)s;
        }
    }
    if (prop[0]) {
        dw_ctx c = {.st = st, .dy = dy, .accum = accum[0]};
        if (!(c.w = nl_in_data(f, 1)) || !(c.dx = nl_in_grad(f, 0, accum[0]))) return -1;
        nl_parallel_for(st->outer * st->c, st->mult * st->p_y * st->kk, dw_bwd_x_range, &c);
    }
    if (prop[1]) {
        dw_ctx c = {.st = st, .dy = dy, .accum = accum[1]};
        if (!(c.x = nl_in_data(f, 0)) || !(c.dw = nl_in_grad(f, 1, accum[1]))) return -1;
        nl_parallel_for(st->oc, st->outer * st->p_y * st->kk, dw_bwd_w_range, &c);
    }
    return 0;
}

const nl_fdef nl_fdef_depthwise_convolution = {
    .name = "depthwise_convolution",
    .doc = "depthwise N-d convolution (1 to 3 spatial axes): x (B..., C, I...), weight "
           "(C*multiplier, K...), bias (C*multiplier) -> y (B..., C*multiplier, O...); output "
           "channel c*multiplier+m reads input channel c",
    .in_names = "x,weight,bias",
    .n_in = 2,
    .n_opt_in = 1,
    .n_out = 1,
    .n_args = 5,
    .args = dw_args,
    .setup = dw_setup,
    .forward = dw_forward,
    .backward = dw_backward,
    .destroy = free_state,
    .grad_in_data = (1u << 0) | (1u << 1),
    .grad_out_data = 0,
};
