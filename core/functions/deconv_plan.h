/*
 * deconv_plan.h - the plans deconvolution.c's setup leaves in f->state for deconvolution
 * and depthwise_convolution, shared with their cuDNN implementations (cuda/cudnn_deconv.cu),
 * which read them instead of deriving the geometry again. Spatial axes are padded in front
 * to NL_DECONV_SD = 3 with size-1 axes (kernel 1, pad 0, stride 1, dilation 1), so index 0
 * is the first (outermost) spatial axis of a 3-d problem. Plain C.
 */
#ifndef NNLUA_DECONV_PLAN_H
#define NNLUA_DECONV_PLAN_H
#include <stdint.h>

enum { NL_DECONV_SD = 3 };

/* A convolution window walk: the image side (the padded one: y of a deconvolution, x of a
 * depthwise convolution) has c channels of img sizes; windows sit at pos positions. */
typedef struct nl_deconv_geom {
    int64_t c;                                             /* channels of the image side */
    int64_t img[NL_DECONV_SD], pos[NL_DECONV_SD];          /* image (padded side) sizes, window positions */
    int64_t k[NL_DECONV_SD], pad[NL_DECONV_SD], stride[NL_DECONV_SD], dil[NL_DECONV_SD];
} nl_deconv_geom;

/* deconvolution: x (outer, c, pos...), weight (c, ocg, k...), y (outer, oc, img...) */
typedef struct nl_deconv_plan {
    nl_deconv_geom g;      /* image side = y (OC channels), positions = x's spatial axes */
    int64_t outer;         /* prod of the axes before the channel axis */
    int64_t c, oc, group;  /* x channels, y channels */
    int64_t cg, ocg, kk;   /* per group: x channels, y channels; prod K */
    int64_t p_x, p_y;      /* spatial sizes of x and y */
} nl_deconv_plan;

/* depthwise_convolution: x (outer, c, img...), weight (oc = c*mult, k...), y (outer, oc, pos...) */
typedef struct nl_dwconv_plan {
    nl_deconv_geom g;      /* image side = x, positions = y's spatial axes */
    int64_t outer, c, mult, oc, kk, p_x, p_y;
} nl_dwconv_plan;

#endif
