/*
 * norm_ext_plan.h - what normalization_ext.c's layer/instance/group normalization and
 * weight_normalization share with their CUDA twins (cuda/norm_ext.cu, which reads
 * f->state), and fused_batch_normalization and clip_grad_by_value/by_norm with theirs
 * (cuda/fused_bn.cu, cuda/clip_grad.cu): the setup's state (tn_map inside norm_state,
 * wn_state), the argument positions, the offsets of an element in the statistic / beta /
 * gamma arrays, and the per-element math.
 * The helpers are host and device functions under nvcc (NL_HD), plain C elsewhere. On the
 * device the arithmetic goes through the round-to-nearest intrinsics (NL_F*, NL_D*), so
 * no product is fused into a sum the CPU (built without FMA) computes apart.
 */
#ifndef NNLUA_NORM_EXT_PLAN_H
#define NNLUA_NORM_EXT_PLAN_H
#include "../src/function.h"
#include "elementwise_math.h"   /* NL_HD */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __CUDA_ARCH__
#define NL_FADD(a, b) __fadd_rn((a), (b))
#define NL_FSUB(a, b) __fsub_rn((a), (b))
#define NL_FMUL(a, b) __fmul_rn((a), (b))
#define NL_DADD(a, b) __dadd_rn((a), (b))
#define NL_DSUB(a, b) __dsub_rn((a), (b))
#define NL_DMUL(a, b) __dmul_rn((a), (b))
#else
#define NL_FADD(a, b) ((a) + (b))
#define NL_FSUB(a, b) ((a) - (b))
#define NL_FMUL(a, b) ((a) * (b))
#define NL_DADD(a, b) ((a) + (b))
#define NL_DSUB(a, b) ((a) - (b))
#define NL_DMUL(a, b) ((a) * (b))
#endif

enum { NL_TN_MAXD = NL_MAX_NDIM + 1 };   /* group norm splits the channel axis in two */

/* ---------------------------------- tensor norm ---------------------------------- */

enum { M_STAT, M_BETA, M_GAMMA, M_N };

/* x as a merged view (size-1 axes dropped, axes contiguous in every map merged), x's
 * row-major order unchanged; st[k][d]: element strides into the statistic / beta / gamma
 * arrays (0 on reduced or broadcast axes), row-major over that array's own shape. */
typedef struct tn_map {
    int nd;
    int64_t shape[NL_TN_MAXD];
    int64_t st[M_N][NL_TN_MAXD];
    int64_t rows, inner, size;
    int64_t nstat, count;     /* statistics and elements per statistic */
} tn_map;

/* layer / instance / group normalization: the inputs' positions */
enum { IN_X, IN_BETA, IN_GAMMA };

/* layer / instance / group normalization (and fused batch norm, clip_grad_by_norm) */
typedef struct norm_state {
    tn_map m;
    bool has_beta, has_gamma;
    double eps;
} norm_state;

/* Offsets of row r (all axes but the last) in the three maps. */
NL_HD void tn_row(const tn_map *m, int64_t r, int64_t off[M_N]) {
    off[0] = off[1] = off[2] = 0;
    for (int d = m->nd - 2; d >= 0; d--) {
        const int64_t c = r % m->shape[d];
        r /= m->shape[d];
        for (int k = 0; k < M_N; k++) off[k] += c * m->st[k][d];
    }
}

/* Offsets of element e of x (row-major) in the three maps: its row's, plus its place in
 * the row times the last axis' strides (the CPU's off[k] + i * st[k][nd - 1]). */
NL_HD void tn_elem(const tn_map *m, int64_t e, int64_t off[M_N]) {
    const int64_t r = e / m->inner, i = e - r * m->inner;
    tn_row(m, r, off);
    for (int k = 0; k < M_N; k++) off[k] += i * m->st[k][m->nd - 1];
}

/* xhat = (x - mean) * rstd */
NL_HD float nl_tn_xhat(float x, float mean, float rstd) { return NL_FMUL(NL_FSUB(x, mean), rstd); }

/* y = xhat * gamma (when hg) + beta (when hb) */
NL_HD float nl_tn_affine(float x, float mean, float rstd, bool hg, float g, bool hb, float b) {
    float v = nl_tn_xhat(x, mean, rstd);
    if (hg) v = NL_FMUL(v, g);
    if (hb) v = NL_FADD(v, b);
    return v;
}

/* dx with batch statistics: rstd * (dy*g - a/n - xhat * b/n), a = sum dy*g and
 * b = sum dy*g*xhat over the element's statistic, inv_n = 1/n */
NL_HD float nl_tn_dx(float x, float mean, float rstd, float dy, float g, double a, double b, double inv_n) {
    const float xh = nl_tn_xhat(x, mean, rstd);
    const double t = NL_DSUB(NL_DSUB((double)NL_FMUL(dy, g), NL_DMUL(a, inv_n)), NL_DMUL(NL_DMUL((double)xh, b), inv_n));
    return NL_FMUL(rstd, (float)t);
}

/* dx with given statistics (batch_stat = false): rstd * dy * g */
NL_HD float nl_tn_dx_given(float rstd, float dy, float g) { return NL_FMUL(NL_FMUL(rstd, dy), g); }

/* 1/sqrt(var + eps), in double, as a float */
NL_HD float nl_tn_rstd(double var, double eps) { return (float)(1.0 / sqrt(NL_DADD(var, eps))); }

/* --------------------------- fused batch normalization --------------------------- */

/* fused_batch_normalization(x, beta, gamma, mean, variance, [z], axes, decay_rate, eps,
 * batch_stat, nonlinearity): the inputs' and the arguments' positions */
enum { FB_X, FB_BETA, FB_GAMMA, FB_MEAN, FB_VAR, FB_Z };
enum { FB_AXES, FB_DECAY, FB_EPS, FB_BATCH_STAT, FB_NONLIN };

/* y = relu(v + z) (z when has_z; NaN gives 0) */
NL_HD float nl_fbn_act(float v, bool has_z, float z) {
    if (has_z) v = NL_FADD(v, z);
    return v > 0.0f ? v : 0.0f;
}
/* the gradient past the relu: dy where y > 0, else 0 */
NL_HD float nl_fbn_mask(float y, float dy) { return y > 0.0f ? dy : 0.0f; }

/* a running statistic: decay * r + (1 - decay) * v * scale, in double */
NL_HD float nl_bn_running(float r, double decay, double v, double scale) {
    return (float)NL_DADD(NL_DMUL(decay, (double)r), NL_DMUL(NL_DMUL(1.0 - decay, v), scale));
}

/* with given statistics: the mean's gradient -rstd * a, the variance's -0.5 rstd^2 b
 * (a = sum dy*g, b = sum dy*g*xhat over the statistic) */
NL_HD float nl_fbn_dstat(bool mean, float rstd, double a, double b) {
    const double r = rstd;
    return (float)(mean ? NL_DMUL(-r, a) : NL_DMUL(NL_DMUL(-0.5 * r, r), b));
}

/* -------------------------------- gradient clipping -------------------------------- */

enum { CGN_CLIP_NORM, CGN_AXES };

/* clip_grad_by_norm: the factor for a statistic whose squares sum to sq */
NL_HD double nl_cgn_scale(double sq, double clip) { return sq > 0 ? clip / sqrt(sq) : 0.0; }
/* dx = dy * factor, in double */
NL_HD float nl_cgn_dx(float dy, double scale) { return (float)NL_DMUL((double)dy, scale); }
/* clip_grad_by_value: dy clamped to [min, max] (max tested first) */
NL_HD float nl_cgv_dx(float dy, float lo, float hi) { return dy > hi ? hi : dy < lo ? lo : dy; }

/* ------------------------------ weight normalization ------------------------------ */

/* weight_normalization(w, g, dim, eps): the arguments' positions */
enum { WN_DIM, WN_EPS };

/* w viewed as (outer, j, inner), dim the middle axis */
typedef struct wn_state { int64_t outer, j, inner; } wn_state;

/* dw = k * (dy - w * q) with k = g/norm, q = sum(dy*w)/norm^2 (nl_wn_kq) */
NL_HD void nl_wn_kq(float g, float norm, double sdw, float *k, float *q) {
    const double n = norm;
    *k = (float)(g / n);
    *q = (float)(sdw / NL_DMUL(n, n));
}
NL_HD float nl_wn_dw(float k, float q, float dy, float w) { return NL_FMUL(k, NL_FSUB(dy, NL_FMUL(w, q))); }

#endif
