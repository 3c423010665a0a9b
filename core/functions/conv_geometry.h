/*
 * conv_geometry.h - argument checks shared by the convolutions (convolution.c and
 * deconvolution.c: deconvolution, depthwise_convolution, depthwise_deconvolution):
 * the channel axis / spatial axis count from base_axis, the per-spatial-axis
 * pad / stride / dilation / output_padding lists and the convolution output size, with the
 * same messages.
 */
#ifndef NNLUA_CONV_GEOMETRY_H
#define NNLUA_CONV_GEOMETRY_H
#include "../src/function.h"

/* List argument k (called name in messages) with one entry per spatial axis (sd of them)
 * into out; deflt for every axis when not given; each entry must be >= min (0 or 1). */
static inline int nl_conv_list_arg(nl_func *f, int k, const char *name, int sd, int64_t deflt,
                                   int64_t min, const char *xs, int64_t *out) {
    if (!nl_arg_given(f, k)) {
        for (int i = 0; i < sd; i++) out[i] = deflt;
        return 0;
    }
    if (nl_arg_len(f, k) != sd)
        return nl_error("%s has %d entries but x %s has %d spatial axes", name, nl_arg_len(f, k), xs, sd);
    for (int i = 0; i < sd; i++) {
        out[i] = nl_arg_at(f, k, i);
        if (out[i] < min)
            return nl_error("%s entry %d is %lld (must be %s)", name, i + 1, (long long)out[i],
                            min == 0 ? "0 or more" : "1 or more");
    }
    return 0;
}

/* Channel axis (*ca, 0-based) and spatial axis count (*sd, 1 to max_sd) of input 0 (shape
 * string xs) from base_axis; fails with the shapes. */
static inline int nl_conv_channel_axis(nl_func *f, int64_t base_axis, const char *xs, int max_sd,
                                       int *ca, int *sd) {
    const nl_var *x = nl_in(f, 0);
    if (nl_norm_axis("base_axis", base_axis, x->ndim, ca)) return -1;
    *sd = x->ndim - *ca - 1;
    if (*sd < 1)
        return nl_error("x %s has no spatial axes after the channel axis (base_axis %lld)", xs,
                        (long long)base_axis);
    if (*sd > max_sd)
        return nl_error("x %s has %d spatial axes after the channel axis (base_axis %lld); "
                        "1 to %d are supported", xs, *sd, (long long)base_axis, max_sd);
    return 0;
}

/* Output size *o of a convolution (not a deconvolution) along spatial axis i (0-based; x axis
 * ca + 2 + i): input size in, kernel k (weight shape string ws), pad, stride, dilation dil;
 * fails when k < 1 or the dilated kernel is larger than the padded input. */
static inline int nl_conv_out_size(int64_t in, int64_t k, int64_t pad, int64_t stride, int64_t dil,
                                   int i, int ca, const char *xs, const char *ws, int64_t *o) {
    if (k < 1)
        return nl_error("weight %s has kernel size %lld in spatial axis %d (must be 1 or more)",
                        ws, (long long)k, i + 1);
    const int64_t keff = dil * (k - 1) + 1;
    if (in + 2 * pad < keff)
        return nl_error("kernel %lld (dilation %lld: extent %lld) is larger than the padded "
                        "input %lld (x size %lld + 2*pad %lld) in spatial axis %d (x axis %d); "
                        "x %s, weight %s",
                        (long long)k, (long long)dil, (long long)keff,
                        (long long)(in + 2 * pad), (long long)in, (long long)pad, i + 1,
                        ca + 2 + i, xs, ws);
    *o = (in + 2 * pad - keff) / stride + 1;
    return 0;
}

#endif
