/*
 * pooling_ext.c - the other pooling functions, with NNabla's semantics
 * (src/nbla/function/generic/{global_average_pooling,sum_pooling,unpooling}.cpp):
 *
 *   global_average_pooling(x)
 *     x: (N, C, ...) with 2 or more axes -> y: (N, C, 1, 1), the mean over every axis
 *     after the second (a 2-d x gives its own values).
 *   sum_pooling(x, kernel, stride=nil, ignore_border=true, pad=nil, channel_last=false)
 *     sums over windows of the last len(kernel) axes (1 to 3); the window geometry and the
 *     output size are max/average pooling's (stride defaults to kernel, pad to 0):
 *       ignore_border = true:  O = (I + 2*pad - K) / stride + 1
 *       ignore_border = false: O = (I + pad - 1) / stride + 1
 *     window of o: [o*stride - pad, min(o*stride - pad + K, I + pad)), read clipped to [0, I).
 *   unpooling(x, kernel, channel_last=false)
 *     spreads every value of the last len(kernel) axes over a kernel-sized block:
 *     y[..., k*i + j] = x[..., i] (0 <= j < k), so y's pooled axes are x's times kernel.
 * channel_last = true is done by the Lua wrappers (lua/nnlua/functions.lua), with transposes.
 */
#include "../src/function.h"
#include "pool_geometry.h"
#include "pooling_ext_plan.h"   /* the states and sp_window, shared with cuda/norm_ext.cu */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

enum { SD = NL_POOL_SD };

static void free_state(nl_func *f) { free(f->state); }

/* ============================ global_average_pooling ============================ */

static int gap_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0);
    char xs[160];
    if (x->ndim < 2)
        return nl_error("x %s must have 2 or more axes (N, C, ...)", nl_shape_str(xs, x->ndim, x->shape));
    gap_state *s = malloc(sizeof *s);
    if (!s) return nl_error("out of memory");
    s->maps = x->shape[0] * x->shape[1];
    s->inner = 1;
    for (int d = 2; d < x->ndim; d++) s->inner *= x->shape[d];
    f->state = s;
    const int64_t oshape[4] = {x->shape[0], x->shape[1], 1, 1};
    nl_set_out_shape(f, 0, 4, oshape);
    return 0;
}

/* x: (maps, inner) -> y: (maps) */
static int gap_forward(nl_func *f) {
    const gap_state *s = f->state;
    NL_PTR(const float *, x, nl_in_data(f, 0));
    NL_PTR(float *, y, nl_out_data(f, 0));
    for (int64_t m = 0; m < s->maps; m++) {
        const float *r = x + m * s->inner;
        double acc = 0;
        for (int64_t i = 0; i < s->inner; i++) acc += r[i];
        y[m] = s->inner > 0 ? (float)(acc / (double)s->inner) : 0.0f;
    }
    return 0;
}

/* dy: (maps) -> dx: (maps, inner) = dy / inner */
static int gap_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    const gap_state *s = f->state;
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    NL_PTR(float *, dx, nl_in_grad(f, 0, accum[0]));
    for (int64_t m = 0; m < s->maps; m++) {
        float *r = dx + m * s->inner;
        const float g = dy[m] / (float)s->inner;
        if (accum[0]) for (int64_t i = 0; i < s->inner; i++) r[i] += g;
        else for (int64_t i = 0; i < s->inner; i++) r[i] = g;
    }
    return 0;
}

const nl_fdef nl_fdef_global_average_pooling = {
    .name = "global_average_pooling",
    .doc = "mean over every axis after the second: x (N, C, ...) -> y (N, C, 1, 1)",
    .in_names = "x",
    .n_in = 1,
    .n_out = 1,
    .n_args = 0,
    .args = NULL,
    .setup = gap_setup,
    .forward = gap_forward,
    .backward = gap_backward,
    .destroy = free_state,
    .grad_in_data = 0,
    .grad_out_data = 0,
};

/* ================================ sum_pooling ================================ */

enum { S_KERNEL, S_STRIDE, S_IGNORE_BORDER, S_PAD, S_CHANNEL_LAST };

static const nl_argdef sum_pool_args[] = {
    {"kernel", NL_ARG_INTS, "nil", NULL},
    {"stride", NL_ARG_INTS, "nil", NULL},
    {"ignore_border", NL_ARG_BOOL, "true", NULL},
    {"pad", NL_ARG_INTS, "nil", NULL},
    {"channel_last", NL_ARG_BOOL, "false", NULL},
};

/* kernel as the list of the last len(kernel) axes; checks shared with unpooling */
static int kernel_arg(nl_func *f, int k, const char *xs, int ndim, int *sd) {
    if (!nl_arg_given(f, k)) return nl_error("argument 'kernel' is required (a list such as {2, 2})");
    *sd = nl_arg_len(f, k);
    if (*sd < 1 || *sd > SD)
        return nl_error("kernel has %d entries; pooling over 1 to %d axes is supported", *sd, SD);
    if (*sd > ndim) return nl_error("kernel has %d entries but x %s has only %d axes", *sd, xs, ndim);
    for (int i = 0; i < *sd; i++)
        if (nl_arg_at(f, k, i) < 1)
            return nl_error("kernel entry %d is %lld (must be 1 or more)", i + 1, (long long)nl_arg_at(f, k, i));
    return 0;
}

static int sp_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0);
    char xs[160];
    nl_shape_str(xs, x->ndim, x->shape);
    if (nl_arg_bool(f, S_CHANNEL_LAST)) return nl_error("channel_last = true is not done by the engine (its kernels are channel-first): the Lua wrapper F.* moves the channel axis around the call");
    int sd;
    if (kernel_arg(f, S_KERNEL, xs, x->ndim, &sd)) return -1;
    if (nl_arg_given(f, S_STRIDE) && nl_arg_len(f, S_STRIDE) != sd)
        return nl_error("stride has %d entries but kernel has %d", nl_arg_len(f, S_STRIDE), sd);
    if (nl_arg_given(f, S_PAD) && nl_arg_len(f, S_PAD) != sd)
        return nl_error("pad has %d entries but kernel has %d", nl_arg_len(f, S_PAD), sd);
    const bool ignore_border = nl_arg_bool(f, S_IGNORE_BORDER);
    sp_state st = {0};
    nl_pool_geom g;
    if (nl_pool_geometry(f, x, xs, sd, S_KERNEL, S_STRIDE, S_PAD, ignore_border, &g)) return -1;
    NL_POOL_GEOM_COPY(st, g);
    nl_set_out_shape(f, 0, x->ndim, g.oshape);
    sp_state *ps = malloc(sizeof *ps);
    if (!ps) return nl_error("out of memory");
    *ps = st;
    f->state = ps;
    return 0;
}

typedef struct sp_ctx { const sp_state *st; const float *x, *dy; float *y, *dx; } sp_ctx;

/* x: (maps, I0, I1, I2) -> y: (maps, O0, O1, O2) */
static void sp_fwd_range(int64_t m0, int64_t m1, void *vctx) {
    const sp_ctx *c = vctx;
    const sp_state *st = c->st;
    const int64_t I1 = st->in[1], I2 = st->in[2];
    for (int64_t m = m0; m < m1; m++) {
        const float *x = c->x + m * st->in_size;
        float *y = c->y + m * st->out_size;
        int64_t o[SD], lo[SD], hi[SD];
        for (o[0] = 0; o[0] < st->out[0]; o[0]++)
            for (o[1] = 0; o[1] < st->out[1]; o[1]++)
                for (o[2] = 0; o[2] < st->out[2]; o[2]++) {
                    sp_window(st, o, lo, hi);
                    float s = 0.0f;
                    for (int64_t i0 = lo[0]; i0 < hi[0]; i0++)
                        for (int64_t i1 = lo[1]; i1 < hi[1]; i1++) {
                            const float *r = x + (i0 * I1 + i1) * I2;
                            for (int64_t i2 = lo[2]; i2 < hi[2]; i2++) s += r[i2];
                        }
                    *y++ = s;
                }
    }
}

/* dy: (maps, O0, O1, O2) -> dx: (maps, I0, I1, I2), adding */
static void sp_bwd_range(int64_t m0, int64_t m1, void *vctx) {
    const sp_ctx *c = vctx;
    const sp_state *st = c->st;
    const int64_t I1 = st->in[1], I2 = st->in[2];
    for (int64_t m = m0; m < m1; m++) {
        float *dx = c->dx + m * st->in_size;
        const float *dy = c->dy + m * st->out_size;
        int64_t o[SD], lo[SD], hi[SD];
        for (o[0] = 0; o[0] < st->out[0]; o[0]++)
            for (o[1] = 0; o[1] < st->out[1]; o[1]++)
                for (o[2] = 0; o[2] < st->out[2]; o[2]++) {
                    sp_window(st, o, lo, hi);
                    const float g = *dy++;
                    for (int64_t i0 = lo[0]; i0 < hi[0]; i0++)
                        for (int64_t i1 = lo[1]; i1 < hi[1]; i1++) {
                            float *r = dx + (i0 * I1 + i1) * I2;
                            for (int64_t i2 = lo[2]; i2 < hi[2]; i2++) r[i2] += g;
                        }
                }
    }
}

static int sp_forward(nl_func *f) {
    const sp_state *st = f->state;
    sp_ctx c = {.st = st};
    if (!(c.x = nl_in_data(f, 0)) || !(c.y = nl_out_data(f, 0))) return -1;
    nl_parallel_for(st->maps, nl_pool_work(st->out_size, st->k), sp_fwd_range, &c);
    return 0;
}

static int sp_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    const sp_state *st = f->state;
    sp_ctx c = {.st = st};
    if (!(c.dy = nl_out_grad(f, 0)) || !(c.dx = nl_in_grad(f, 0, accum[0]))) return -1;
    if (!accum[0]) memset(c.dx, 0, (size_t)(st->maps * st->in_size) * sizeof(float));
    nl_parallel_for(st->maps, nl_pool_work(st->out_size, st->k), sp_bwd_range, &c);
    return 0;
}

const nl_fdef nl_fdef_sum_pooling = {
    .name = "sum_pooling",
    .doc = "sum over windows of the last len(kernel) axes (1 to 3); stride defaults to kernel",
    .in_names = "x",
    .n_in = 1,
    .n_out = 1,
    .n_args = 5,
    .args = sum_pool_args,
    .setup = sp_setup,
    .forward = sp_forward,
    .backward = sp_backward,
    .destroy = free_state,
    .grad_in_data = 0,
    .grad_out_data = 0,
};

/* ================================= unpooling ================================= */

enum { U_KERNEL, U_CHANNEL_LAST };

static const nl_argdef unpool_args[] = {
    {"kernel", NL_ARG_INTS, "nil", NULL},
    {"channel_last", NL_ARG_BOOL, "false", NULL},
};

static int up_setup(nl_func *f) {
    const nl_var *x = nl_in(f, 0);
    char xs[160];
    nl_shape_str(xs, x->ndim, x->shape);
    if (nl_arg_bool(f, U_CHANNEL_LAST)) return nl_error("channel_last = true is not done by the engine (its kernels are channel-first): the Lua wrapper F.* moves the channel axis around the call");
    /* NNabla accepts a kernel as long as x's rank; leading 1s (no-ops) are dropped here */
    if (!nl_arg_given(f, U_KERNEL)) return nl_error("argument 'kernel' is required (a list such as {2, 2})");
    int skip = 0;
    while (nl_arg_len(f, U_KERNEL) - skip > SD && nl_arg_at(f, U_KERNEL, skip) == 1) skip++;
    const int sd = nl_arg_len(f, U_KERNEL) - skip;
    if (sd < 1 || sd > SD)
        return nl_error("kernel has %d entries; unpooling over 1 to %d axes (after leading 1s) is supported",
                        nl_arg_len(f, U_KERNEL), SD);
    if (nl_arg_len(f, U_KERNEL) > x->ndim)
        return nl_error("kernel has %d entries but x %s has only %d axes", nl_arg_len(f, U_KERNEL), xs, x->ndim);
    for (int i = 0; i < sd; i++)
        if (nl_arg_at(f, U_KERNEL, skip + i) < 1)
            return nl_error("kernel entry %d is %lld (must be 1 or more)", skip + i + 1,
                            (long long)nl_arg_at(f, U_KERNEL, skip + i));
    up_state st = {0};
    for (int i = 0; i < SD; i++) st.in[i] = st.k[i] = 1;
    const int first = x->ndim - sd, lead = SD - sd;
    st.maps = 1;
    for (int d = 0; d < first; d++) st.maps *= x->shape[d];
    int64_t oshape[NL_MAX_NDIM];
    for (int d = 0; d < first; d++) oshape[d] = x->shape[d];
    for (int i = 0; i < sd; i++) {
        const int64_t k = nl_arg_at(f, U_KERNEL, skip + i), in = x->shape[first + i];
        if (in > INT64_MAX / 8 / k) return nl_error("x %s with kernel entry %d = %lld is too large", xs, i + 1, (long long)k);
        oshape[first + i] = in * k;
        st.in[lead + i] = in;
        st.k[lead + i] = k;
    }
    if (nl_check_out_size("y", x->ndim, oshape)) return -1;
    st.in_size = st.out_size = 1;
    for (int i = 0; i < SD; i++) { st.in_size *= st.in[i]; st.out_size *= st.in[i] * st.k[i]; }
    nl_set_out_shape(f, 0, x->ndim, oshape);
    up_state *ps = malloc(sizeof *ps);
    if (!ps) return nl_error("out of memory");
    *ps = st;
    f->state = ps;
    return 0;
}

typedef struct up_ctx { const up_state *st; const float *src; float *dst; bool accum; } up_ctx;

/* x: (maps, I0, I1, I2) -> y: (maps, I0*K0, I1*K1, I2*K2) */
static void up_fwd_range(int64_t m0, int64_t m1, void *vctx) {
    const up_ctx *c = vctx;
    const up_state *st = c->st;
    const int64_t O1 = st->in[1] * st->k[1], O2 = st->in[2] * st->k[2];
    for (int64_t m = m0; m < m1; m++) {
        const float *x = c->src + m * st->in_size;
        float *y = c->dst + m * st->out_size;
        for (int64_t o0 = 0; o0 < st->in[0] * st->k[0]; o0++)
            for (int64_t o1 = 0; o1 < O1; o1++) {
                const float *r = x + ((o0 / st->k[0]) * st->in[1] + o1 / st->k[1]) * st->in[2];
                float *w = y + (o0 * O1 + o1) * O2;
                for (int64_t o2 = 0; o2 < O2; o2++) w[o2] = r[o2 / st->k[2]];
            }
    }
}

/* dy: (maps, I0*K0, I1*K1, I2*K2) -> dx: (maps, I0, I1, I2) = block sums */
static void up_bwd_range(int64_t m0, int64_t m1, void *vctx) {
    const up_ctx *c = vctx;
    const up_state *st = c->st;
    const int64_t O1 = st->in[1] * st->k[1], O2 = st->in[2] * st->k[2];
    for (int64_t m = m0; m < m1; m++) {
        const float *dy = c->src + m * st->out_size;
        float *dx = c->dst + m * st->in_size;
        if (!c->accum) memset(dx, 0, (size_t)st->in_size * sizeof(float));
        for (int64_t o0 = 0; o0 < st->in[0] * st->k[0]; o0++)
            for (int64_t o1 = 0; o1 < O1; o1++) {
                float *r = dx + ((o0 / st->k[0]) * st->in[1] + o1 / st->k[1]) * st->in[2];
                const float *g = dy + (o0 * O1 + o1) * O2;
                for (int64_t o2 = 0; o2 < O2; o2++) r[o2 / st->k[2]] += g[o2];
            }
    }
}

static int up_forward(nl_func *f) {
    const up_state *st = f->state;
    up_ctx c = {.st = st};
    if (!(c.src = nl_in_data(f, 0)) || !(c.dst = nl_out_data(f, 0))) return -1;
    nl_parallel_for(st->maps, st->out_size, up_fwd_range, &c);
    return 0;
}

static int up_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    const up_state *st = f->state;
    up_ctx c = {.st = st, .accum = accum[0]};
    if (!(c.src = nl_out_grad(f, 0)) || !(c.dst = nl_in_grad(f, 0, accum[0]))) return -1;
    nl_parallel_for(st->maps, st->out_size, up_bwd_range, &c);
    return 0;
}

const nl_fdef nl_fdef_unpooling = {
    .name = "unpooling",
    .doc = "spreads each value of the last len(kernel) axes over a kernel-sized block: "
           "y[..., k*i + j] = x[..., i]",
    .in_names = "x",
    .n_in = 1,
    .n_out = 1,
    .n_args = 2,
    .args = unpool_args,
    .setup = up_setup,
    .forward = up_forward,
    .backward = up_backward,
    .destroy = free_state,
    .grad_in_data = 0,
    .grad_out_data = 0,
};
