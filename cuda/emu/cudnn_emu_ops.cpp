/*
 * cuda/emu/cudnn_emu_ops.cpp - TEST-ONLY CPU emulation of cuDNN's pooling, batch
 * normalization, softmax and activation calls (cuda/emu/cudnn.h), on float tensors with
 * any strides, in double, with y = alpha * result + beta * y (y not read when beta is 0).
 *   pooling     4-d/5-d; output 1 + (in + 2 pad - window) / stride per spatial axis (the
 *               output descriptor must have it); max (NaN skipped, or propagated with
 *               CUDNN_PROPAGATE_NAN), average over the whole window (INCLUDE_PADDING) or over
 *               its in-image part (EXCLUDE_PADDING). Max backward sends dy to the first
 *               position of the window whose x equals the forward output y it is given.
 *   batch norm  SPATIAL (statistics per channel over N and the spatial axes) or
 *               PER_ACTIVATION (per C x spatial over N). Training normalizes with the biased
 *               batch variance, saves the mean and 1/sqrt(var + epsilon), and updates
 *               running = (1 - factor) * running + factor * batch stat, the variance
 *               unbiased (M / (M - 1)); running and saved pointers may each be NULL as pairs.
 *               Backward uses the saved mean / inverse std (or recomputes them when both
 *               are NULL), blending dx with alphaDataDiff/betaDataDiff and dScale, dBias
 *               with alphaParamDiff/betaParamDiff.
 *   softmax     CHANNEL (over C for each n and position) or INSTANCE (over C x spatial);
 *               FAST (no max subtracted), ACCURATE, LOG; backward y (dy - sum dy y), or
 *               for LOG dy - exp(y) sum dy.
 *   activation  sigmoid, relu, tanh, clipped relu (ceiling coef), elu (alpha coef); relu
 *               of NaN is 0 unless CUDNN_PROPAGATE_NAN; backward from x, y and dy.
 * Every call here but the output-size query can be refused with CUDNN_STATUS_NOT_SUPPORTED
 * by the test knob NNLUA_CUDA_EMU_CUDNN_REJECT (cudnn_emu.cpp).
 */
#include "cudnn_emu_impl.h"
#include <math.h>
#include <vector>

using namespace nlc_cudnn_emu;

namespace {

bool base_ok(cudnnHandle_t h, const void *alpha, const void *beta) { return handle_ok(h) && alpha && beta; }

/* ---- pooling ------------------------------------------------------------------------------ */

struct pgeom {
    int64_t n, c;
    int in[3], out[3], win[3], pad[3], str[3];
    int64_t xs[5], ys[5];
    int64_t in_sp() const { return (int64_t)in[0] * in[1] * in[2]; }
    int64_t out_sp() const { return (int64_t)out[0] * out[1] * out[2]; }
    int64_t win_sp() const { return (int64_t)win[0] * win[1] * win[2]; }
};

void strides5(const tensor *t, int64_t *s) {
    if (t->nd == 5) {
        for (int k = 0; k < 5; k++) s[k] = t->stride[k];
    } else {
        s[0] = t->stride[0]; s[1] = t->stride[1]; s[2] = 0; s[3] = t->stride[2]; s[4] = t->stride[3];
    }
}

cudnnStatus_t pool_dims(const nlc_emu_cudnn_pooling *pd, const tensor *x, int nd, int *o) {
    if (!pd || !x || !o || !pd->set || !x->set) return CUDNN_STATUS_BAD_PARAM;
    if (nd != x->nd || pd->n != nd - 2) return CUDNN_STATUS_BAD_PARAM;
    o[0] = x->dim[0];
    o[1] = x->dim[1];
    for (int i = 0; i < pd->n; i++) {
        const long long span = (long long)x->dim[2 + i] + 2LL * pd->pad[i] - pd->win[i];
        if (span < 0) return CUDNN_STATUS_BAD_PARAM;
        o[2 + i] = (int)(1 + span / pd->stride[i]);
    }
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t make_pgeom(const nlc_emu_cudnn_pooling *pd, const tensor *x, const tensor *y, pgeom *g) {
    if (!pd || !x || !y || !pd->set || !x->set || !y->set) return CUDNN_STATUS_BAD_PARAM;
    if (x->type != y->type) return CUDNN_STATUS_BAD_PARAM;
    if (!float_tensor(x)) return CUDNN_STATUS_NOT_SUPPORTED;
    if (x->nd != 4 && x->nd != 5) return CUDNN_STATUS_NOT_SUPPORTED;
    int o[CUDNN_DIM_MAX];
    if (cudnnStatus_t s = pool_dims(pd, x, x->nd, o)) return s;
    if (y->nd != x->nd) return CUDNN_STATUS_BAD_PARAM;
    for (int k = 0; k < y->nd; k++)
        if (y->dim[k] != o[k]) return CUDNN_STATUS_BAD_PARAM;
    const int lead = 5 - x->nd;
    g->n = x->dim[0];
    g->c = x->dim[1];
    for (int i = 0; i < 3; i++) {
        const int j = i - lead;
        g->in[i] = j < 0 ? 1 : x->dim[2 + j];
        g->out[i] = j < 0 ? 1 : y->dim[2 + j];
        g->win[i] = j < 0 ? 1 : pd->win[j];
        g->pad[i] = j < 0 ? 0 : pd->pad[j];
        g->str[i] = j < 0 ? 1 : pd->stride[j];
    }
    strides5(x, g->xs);
    strides5(y, g->ys);
    return CUDNN_STATUS_SUCCESS;
}

/* fn(b, ch, o, taps, ntaps): each output (b, ch, o) with the offsets (x's strides) and
 * packed in-image indices of its window's in-image taps, in row-major window order */
template <class F> void each_window(const pgeom &g, F fn) {
    std::vector<int64_t> offs((size_t)g.win_sp()), packed((size_t)g.win_sp());
    int o[3], t[3], i[3];
    for (int64_t b = 0; b < g.n; b++)
        for (int64_t ch = 0; ch < g.c; ch++)
            for (int64_t op = 0; op < g.out_sp(); op++) {
                unravel(op, 3, g.out, o);
                int64_t nt = 0;
                for (int64_t tp = 0; tp < g.win_sp(); tp++) {
                    unravel(tp, 3, g.win, t);
                    bool in = true;
                    for (int a = 0; a < 3; a++) {
                        i[a] = o[a] * g.str[a] - g.pad[a] + t[a];
                        in = in && i[a] >= 0 && i[a] < g.in[a];
                    }
                    if (!in) continue;
                    offs[(size_t)nt] = b * g.xs[0] + ch * g.xs[1] + i[0] * g.xs[2] + i[1] * g.xs[3] + i[2] * g.xs[4];
                    packed[(size_t)nt] = (b * g.c + ch) * g.in_sp() + ((int64_t)i[0] * g.in[1] + i[1]) * g.in[2] + i[2];
                    nt++;
                }
                const int64_t yo = b * g.ys[0] + ch * g.ys[1] + o[0] * g.ys[2] + o[1] * g.ys[3] + o[2] * g.ys[4];
                fn(yo, offs.data(), packed.data(), nt);
            }
}

bool is_max(const nlc_emu_cudnn_pooling *pd) {
    return pd->mode == CUDNN_POOLING_MAX || pd->mode == CUDNN_POOLING_MAX_DETERMINISTIC;
}

/* ---- batch norm ------------------------------------------------------------------------- */

/* x, y (same dims, 4-d or 5-d) and the parameter descriptor with the derived dims */
cudnnStatus_t bn_check(cudnnBatchNormMode_t mode, const tensor *x, const tensor *y, const tensor *p, bool *red) {
    if (mode != CUDNN_BATCHNORM_PER_ACTIVATION && mode != CUDNN_BATCHNORM_SPATIAL &&
        mode != CUDNN_BATCHNORM_SPATIAL_PERSISTENT)
        return CUDNN_STATUS_BAD_PARAM;
    if (!x || !y || !p || !x->set || !y->set || !p->set) return CUDNN_STATUS_BAD_PARAM;
    if (x->type != y->type || !same_dims(x, y) || (x->nd != 4 && x->nd != 5) || p->nd != x->nd)
        return CUDNN_STATUS_BAD_PARAM;
    if (!float_tensor(x) || p->type != CUDNN_DATA_FLOAT) return CUDNN_STATUS_NOT_SUPPORTED;
    for (int k = 0; k < x->nd; k++) {
        red[k] = k == 0 || (k > 1 && mode != CUDNN_BATCHNORM_PER_ACTIVATION);
        if (p->dim[k] != (red[k] ? 1 : x->dim[k])) return CUDNN_STATUS_BAD_PARAM;
    }
    return CUDNN_STATUS_SUCCESS;
}

/* ---- softmax, activation ---------------------------------------------------------------- */

cudnnStatus_t pair_check(const tensor *a, const tensor *b) {
    if (!a || !b || !a->set || !b->set) return CUDNN_STATUS_BAD_PARAM;
    if (a->type != b->type || !same_dims(a, b)) return CUDNN_STATUS_BAD_PARAM;
    if (!float_tensor(a)) return CUDNN_STATUS_NOT_SUPPORTED;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t softmax_check(cudnnSoftmaxAlgorithm_t algo, cudnnSoftmaxMode_t mode, const tensor *t, bool *red) {
    if (algo != CUDNN_SOFTMAX_FAST && algo != CUDNN_SOFTMAX_ACCURATE && algo != CUDNN_SOFTMAX_LOG)
        return CUDNN_STATUS_BAD_PARAM;
    if (mode != CUDNN_SOFTMAX_MODE_INSTANCE && mode != CUDNN_SOFTMAX_MODE_CHANNEL) return CUDNN_STATUS_BAD_PARAM;
    if (t->nd < 4) return CUDNN_STATUS_NOT_SUPPORTED;
    for (int k = 0; k < t->nd; k++) red[k] = mode == CUDNN_SOFTMAX_MODE_CHANNEL ? k == 1 : k >= 1;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t act_check(const nlc_emu_cudnn_activation *ad) {
    if (!ad || !ad->set) return CUDNN_STATUS_BAD_PARAM;
    switch (ad->mode) {
    case CUDNN_ACTIVATION_SIGMOID: case CUDNN_ACTIVATION_RELU: case CUDNN_ACTIVATION_TANH:
    case CUDNN_ACTIVATION_CLIPPED_RELU: case CUDNN_ACTIVATION_ELU:
        return CUDNN_STATUS_SUCCESS;
    case CUDNN_ACTIVATION_IDENTITY:          /* only for cudnnConvolutionBiasActivationForward */
        return CUDNN_STATUS_BAD_PARAM;
    default:
        return CUDNN_STATUS_NOT_SUPPORTED;   /* swish: not emulated */
    }
}

double act_fwd(const nlc_emu_cudnn_activation *ad, double x) {
    const bool prop = ad->nan == CUDNN_PROPAGATE_NAN;
    switch (ad->mode) {
    case CUDNN_ACTIVATION_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case CUDNN_ACTIVATION_TANH: return tanh(x);
    case CUDNN_ACTIVATION_RELU: return (prop && x != x) ? x : (x > 0.0 ? x : 0.0);
    case CUDNN_ACTIVATION_CLIPPED_RELU:
        return (prop && x != x) ? x : (x > 0.0 ? (x < ad->coef ? x : ad->coef) : 0.0);
    case CUDNN_ACTIVATION_ELU: return x > 0.0 ? x : ad->coef * (exp(x) - 1.0);
    default: return x;
    }
}

double act_bwd(const nlc_emu_cudnn_activation *ad, double x, double y, double dy) {
    switch (ad->mode) {
    case CUDNN_ACTIVATION_SIGMOID: return dy * y * (1.0 - y);
    case CUDNN_ACTIVATION_TANH: return dy * (1.0 - y * y);
    case CUDNN_ACTIVATION_RELU: return x > 0.0 ? dy : 0.0;
    case CUDNN_ACTIVATION_CLIPPED_RELU: return (x > 0.0 && x < ad->coef) ? dy : 0.0;
    case CUDNN_ACTIVATION_ELU: return x > 0.0 ? dy : dy * (y + ad->coef);
    default: return dy;
    }
}

}  // namespace

/* ---- pooling ------------------------------------------------------------------------------ */

cudnnStatus_t cudnnGetPoolingNdForwardOutputDim(const cudnnPoolingDescriptor_t pd, const cudnnTensorDescriptor_t x,
                                                int nbDims, int o[]) {
    return pool_dims(pd, x, nbDims, o);
}

cudnnStatus_t cudnnPoolingForward(cudnnHandle_t h, const cudnnPoolingDescriptor_t pd, const void *alpha,
                                  const cudnnTensorDescriptor_t xd, const void *x, const void *beta,
                                  const cudnnTensorDescriptor_t yd, void *y) {
    NLC_EMU_REJECTABLE();
    pgeom g;
    if (!base_ok(h, alpha, beta) || !x || !y) return CUDNN_STATUS_BAD_PARAM;
    if (cudnnStatus_t s = make_pgeom(pd, xd, yd, &g)) return s;
    counted(__func__);
    const float *X = (const float *)x;
    const double a = scal(alpha), bt = scal(beta), full = (double)g.win_sp();
    const bool mx = is_max(pd), prop = pd->nan == CUDNN_PROPAGATE_NAN;
    std::vector<std::pair<int64_t, double>> res;
    each_window(g, [&](int64_t yo, const int64_t *offs, const int64_t *, int64_t nt) {
        double v;
        if (mx) {
            v = -INFINITY;
            for (int64_t t = 0; t < nt; t++) {
                const double e = X[offs[t]];
                if (e != e) {
                    if (prop) { v = e; break; }
                } else if (e > v) {
                    v = e;
                }
            }
        } else {
            double s = 0.0;
            for (int64_t t = 0; t < nt; t++) s += X[offs[t]];
            const double cnt = pd->mode == CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING ? full : (double)nt;
            v = cnt > 0 ? s / cnt : 0.0;
        }
        res.push_back({yo, v});                 /* written after all reads: y may alias x */
    });
    for (auto &r : res) blend((float *)y + r.first, r.second, a, bt);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnPoolingBackward(cudnnHandle_t h, const cudnnPoolingDescriptor_t pd, const void *alpha,
                                   const cudnnTensorDescriptor_t yd, const void *y, const cudnnTensorDescriptor_t dyd,
                                   const void *dy, const cudnnTensorDescriptor_t xd, const void *x, const void *beta,
                                   const cudnnTensorDescriptor_t dxd, void *dx) {
    NLC_EMU_REJECTABLE();
    pgeom g, gd;
    if (!base_ok(h, alpha, beta) || !y || !dy || !x || !dx) return CUDNN_STATUS_BAD_PARAM;
    if (cudnnStatus_t s = make_pgeom(pd, xd, yd, &g)) return s;
    if (cudnnStatus_t s = make_pgeom(pd, dxd, dyd, &gd)) return s;
    if (!same_dims(xd, dxd)) return CUDNN_STATUS_BAD_PARAM;
    counted(__func__);
    const float *X = (const float *)x, *Y = (const float *)y, *DY = (const float *)dy;
    const bool mx = is_max(pd);
    const double full = (double)g.win_sp();
    std::vector<double> acc((size_t)(g.n * g.c * g.in_sp()), 0.0);
    /* walk the windows of the (x, y) geometry, reading dy through its own strides */
    std::vector<int64_t> dyo;
    each_window(gd, [&](int64_t o, const int64_t *, const int64_t *, int64_t) { dyo.push_back(o); });
    size_t w = 0;
    each_window(g, [&](int64_t yo, const int64_t *offs, const int64_t *packed, int64_t nt) {
        const double d = DY[dyo[w++]];
        if (mx) {
            const float yv = Y[yo];
            for (int64_t t = 0; t < nt; t++) {
                const float e = X[offs[t]];
                if (e == yv || (e != e && yv != yv)) {
                    acc[(size_t)packed[t]] += d;
                    break;
                }
            }
        } else {
            const double cnt = pd->mode == CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING ? full : (double)nt;
            for (int64_t t = 0; t < nt; t++) acc[(size_t)packed[t]] += d / cnt;
        }
    });
    const double a = scal(alpha), bt = scal(beta);
    int idx[CUDNN_DIM_MAX];
    for (int64_t e = 0; e < (int64_t)acc.size(); e++) {
        unravel(e, dxd->nd, dxd->dim, idx);
        blend((float *)dx + offset(dxd, idx), acc[(size_t)e], a, bt);
    }
    return CUDNN_STATUS_SUCCESS;
}

/* ---- batch normalization -------------------------------------------------------------- */

cudnnStatus_t cudnnBatchNormalizationForwardTraining(cudnnHandle_t h, cudnnBatchNormMode_t mode, const void *alpha,
                                                     const void *beta, const cudnnTensorDescriptor_t xd, const void *x,
                                                     const cudnnTensorDescriptor_t yd, void *y,
                                                     const cudnnTensorDescriptor_t pd, const void *scale,
                                                     const void *bias, double factor, void *rmean, void *rvar,
                                                     double eps, void *smean, void *sinv) {
    NLC_EMU_REJECTABLE();
    bool red[CUDNN_DIM_MAX];
    if (!base_ok(h, alpha, beta) || !x || !y || !scale || !bias) return CUDNN_STATUS_BAD_PARAM;
    if (cudnnStatus_t s = bn_check(mode, xd, yd, pd, red)) return s;
    if (eps < CUDNN_BN_MIN_EPSILON || (!rmean) != (!rvar) || (!smean) != (!sinv)) return CUDNN_STATUS_BAD_PARAM;
    counted(__func__);
    const split sp(xd, red);
    const double a = scal(alpha), bt = scal(beta), M = (double)sp.per;
    const float *X = (const float *)x;
    float *RM = (float *)rmean, *RV = (float *)rvar, *SM = (float *)smean, *SI = (float *)sinv;
    int idx[CUDNN_DIM_MAX];
    std::vector<double> out((size_t)sp.per);
    for (int64_t s = 0; s < sp.slots; s++) {
        sp.index(s, 0, idx);
        const int64_t po = offset(pd, idx);
        double mean = 0.0, var = 0.0;
        for (int64_t r = 0; r < sp.per; r++) {
            sp.index(s, r, idx);
            mean += X[offset(xd, idx)];
        }
        mean /= M;
        for (int64_t r = 0; r < sp.per; r++) {
            sp.index(s, r, idx);
            const double d = X[offset(xd, idx)] - mean;
            var += d * d;
        }
        var /= M;
        const double inv = 1.0 / sqrt(var + eps);
        const double gm = ((const float *)scale)[po], bs = ((const float *)bias)[po];
        for (int64_t r = 0; r < sp.per; r++) {
            sp.index(s, r, idx);
            out[(size_t)r] = gm * (X[offset(xd, idx)] - mean) * inv + bs;
        }
        for (int64_t r = 0; r < sp.per; r++) {
            sp.index(s, r, idx);
            blend((float *)y + offset(yd, idx), out[(size_t)r], a, bt);
        }
        if (RM) {
            RM[po] = (float)((1.0 - factor) * RM[po] + factor * mean);
            RV[po] = (float)((1.0 - factor) * RV[po] + factor * var * M / (M - 1.0));
        }
        if (SM) {
            SM[po] = (float)mean;
            SI[po] = (float)inv;
        }
    }
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnBatchNormalizationForwardInference(cudnnHandle_t h, cudnnBatchNormMode_t mode, const void *alpha,
                                                      const void *beta, const cudnnTensorDescriptor_t xd,
                                                      const void *x, const cudnnTensorDescriptor_t yd, void *y,
                                                      const cudnnTensorDescriptor_t pd, const void *scale,
                                                      const void *bias, const void *emean, const void *evar,
                                                      double eps) {
    NLC_EMU_REJECTABLE();
    bool red[CUDNN_DIM_MAX];
    if (!base_ok(h, alpha, beta) || !x || !y || !scale || !bias || !emean || !evar) return CUDNN_STATUS_BAD_PARAM;
    if (cudnnStatus_t s = bn_check(mode, xd, yd, pd, red)) return s;
    if (eps < CUDNN_BN_MIN_EPSILON) return CUDNN_STATUS_BAD_PARAM;
    counted(__func__);
    const split sp(xd, red);
    const double a = scal(alpha), bt = scal(beta);
    int idx[CUDNN_DIM_MAX];
    for (int64_t s = 0; s < sp.slots; s++) {
        sp.index(s, 0, idx);
        const int64_t po = offset(pd, idx);
        const double mean = ((const float *)emean)[po], inv = 1.0 / sqrt(((const float *)evar)[po] + eps);
        const double gm = ((const float *)scale)[po], bs = ((const float *)bias)[po];
        for (int64_t r = 0; r < sp.per; r++) {
            sp.index(s, r, idx);
            const double v = gm * (((const float *)x)[offset(xd, idx)] - mean) * inv + bs;
            blend((float *)y + offset(yd, idx), v, a, bt);
        }
    }
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnBatchNormalizationBackward(cudnnHandle_t h, cudnnBatchNormMode_t mode, const void *alphaData,
                                              const void *betaData, const void *alphaParam, const void *betaParam,
                                              const cudnnTensorDescriptor_t xd, const void *x,
                                              const cudnnTensorDescriptor_t dyd, const void *dy,
                                              const cudnnTensorDescriptor_t dxd, void *dx,
                                              const cudnnTensorDescriptor_t pd, const void *scale, void *dscale,
                                              void *dbias, double eps, const void *smean, const void *sinv) {
    NLC_EMU_REJECTABLE();
    bool red[CUDNN_DIM_MAX];
    if (!base_ok(h, alphaData, betaData) || !alphaParam || !betaParam) return CUDNN_STATUS_BAD_PARAM;
    if (!x || !dy || !dx || !scale || !dscale || !dbias) return CUDNN_STATUS_BAD_PARAM;
    if (cudnnStatus_t s = bn_check(mode, xd, dyd, pd, red)) return s;
    if (cudnnStatus_t s = pair_check(xd, dxd)) return s;
    if (eps < CUDNN_BN_MIN_EPSILON || (!smean) != (!sinv)) return CUDNN_STATUS_BAD_PARAM;
    counted(__func__);
    const split sp(xd, red);
    const double ad = scal(alphaData), bd = scal(betaData), ap = scal(alphaParam), bp = scal(betaParam);
    const double M = (double)sp.per;
    const float *X = (const float *)x, *DY = (const float *)dy;
    int idx[CUDNN_DIM_MAX];
    std::vector<double> out((size_t)sp.per);
    for (int64_t s = 0; s < sp.slots; s++) {
        sp.index(s, 0, idx);
        const int64_t po = offset(pd, idx);
        double mean, inv;
        if (smean) {
            mean = ((const float *)smean)[po];
            inv = ((const float *)sinv)[po];
        } else {
            double m = 0.0, v = 0.0;
            for (int64_t r = 0; r < sp.per; r++) { sp.index(s, r, idx); m += X[offset(xd, idx)]; }
            m /= M;
            for (int64_t r = 0; r < sp.per; r++) {
                sp.index(s, r, idx);
                const double d = X[offset(xd, idx)] - m;
                v += d * d;
            }
            mean = m;
            inv = 1.0 / sqrt(v / M + eps);
        }
        double sdy = 0.0, sdyx = 0.0;
        for (int64_t r = 0; r < sp.per; r++) {
            sp.index(s, r, idx);
            const double d = DY[offset(dyd, idx)];
            sdy += d;
            sdyx += d * (X[offset(xd, idx)] - mean) * inv;
        }
        const double gm = ((const float *)scale)[po];
        for (int64_t r = 0; r < sp.per; r++) {
            sp.index(s, r, idx);
            const double xh = (X[offset(xd, idx)] - mean) * inv;
            out[(size_t)r] = gm * inv * (DY[offset(dyd, idx)] - sdy / M - xh * sdyx / M);
        }
        for (int64_t r = 0; r < sp.per; r++) {
            sp.index(s, r, idx);
            blend((float *)dx + offset(dxd, idx), out[(size_t)r], ad, bd);
        }
        blend((float *)dscale + po, sdyx, ap, bp);
        blend((float *)dbias + po, sdy, ap, bp);
    }
    return CUDNN_STATUS_SUCCESS;
}

/* ---- softmax ------------------------------------------------------------------------------ */

cudnnStatus_t cudnnSoftmaxForward(cudnnHandle_t h, cudnnSoftmaxAlgorithm_t algo, cudnnSoftmaxMode_t mode,
                                  const void *alpha, const cudnnTensorDescriptor_t xd, const void *x, const void *beta,
                                  const cudnnTensorDescriptor_t yd, void *y) {
    NLC_EMU_REJECTABLE();
    bool red[CUDNN_DIM_MAX];
    if (!base_ok(h, alpha, beta) || !x || !y) return CUDNN_STATUS_BAD_PARAM;
    if (cudnnStatus_t s = pair_check(xd, yd)) return s;
    if (cudnnStatus_t s = softmax_check(algo, mode, xd, red)) return s;
    counted(__func__);
    const split sp(xd, red);
    const double a = scal(alpha), bt = scal(beta);
    const float *X = (const float *)x;
    int idx[CUDNN_DIM_MAX];
    std::vector<double> out((size_t)sp.per);
    for (int64_t s = 0; s < sp.slots; s++) {
        double m = algo == CUDNN_SOFTMAX_FAST ? 0.0 : -INFINITY, sum = 0.0;
        if (algo != CUDNN_SOFTMAX_FAST)
            for (int64_t r = 0; r < sp.per; r++) {
                sp.index(s, r, idx);
                m = fmax(m, (double)X[offset(xd, idx)]);
            }
        for (int64_t r = 0; r < sp.per; r++) {
            sp.index(s, r, idx);
            sum += exp(X[offset(xd, idx)] - m);
        }
        for (int64_t r = 0; r < sp.per; r++) {
            sp.index(s, r, idx);
            const double v = X[offset(xd, idx)] - m;
            out[(size_t)r] = algo == CUDNN_SOFTMAX_LOG ? v - log(sum) : exp(v) / sum;
        }
        for (int64_t r = 0; r < sp.per; r++) {
            sp.index(s, r, idx);
            blend((float *)y + offset(yd, idx), out[(size_t)r], a, bt);
        }
    }
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSoftmaxBackward(cudnnHandle_t h, cudnnSoftmaxAlgorithm_t algo, cudnnSoftmaxMode_t mode,
                                   const void *alpha, const cudnnTensorDescriptor_t yd, const void *y,
                                   const cudnnTensorDescriptor_t dyd, const void *dy, const void *beta,
                                   const cudnnTensorDescriptor_t dxd, void *dx) {
    NLC_EMU_REJECTABLE();
    bool red[CUDNN_DIM_MAX];
    if (!base_ok(h, alpha, beta) || !y || !dy || !dx) return CUDNN_STATUS_BAD_PARAM;
    if (cudnnStatus_t s = pair_check(yd, dyd)) return s;
    if (cudnnStatus_t s = pair_check(yd, dxd)) return s;
    if (cudnnStatus_t s = softmax_check(algo, mode, yd, red)) return s;
    counted(__func__);
    const split sp(yd, red);
    const double a = scal(alpha), bt = scal(beta);
    const float *Y = (const float *)y, *DY = (const float *)dy;
    int idx[CUDNN_DIM_MAX];
    std::vector<double> out((size_t)sp.per);
    for (int64_t s = 0; s < sp.slots; s++) {
        double sum = 0.0;
        for (int64_t r = 0; r < sp.per; r++) {
            sp.index(s, r, idx);
            const double d = DY[offset(dyd, idx)];
            sum += algo == CUDNN_SOFTMAX_LOG ? d : d * Y[offset(yd, idx)];
        }
        for (int64_t r = 0; r < sp.per; r++) {
            sp.index(s, r, idx);
            const double yv = Y[offset(yd, idx)], d = DY[offset(dyd, idx)];
            out[(size_t)r] = algo == CUDNN_SOFTMAX_LOG ? d - exp(yv) * sum : yv * (d - sum);
        }
        for (int64_t r = 0; r < sp.per; r++) {
            sp.index(s, r, idx);
            blend((float *)dx + offset(dxd, idx), out[(size_t)r], a, bt);
        }
    }
    return CUDNN_STATUS_SUCCESS;
}

/* ---- activations -------------------------------------------------------------------------- */

cudnnStatus_t cudnnActivationForward(cudnnHandle_t h, cudnnActivationDescriptor_t ad, const void *alpha,
                                     const cudnnTensorDescriptor_t xd, const void *x, const void *beta,
                                     const cudnnTensorDescriptor_t yd, void *y) {
    NLC_EMU_REJECTABLE();
    if (!base_ok(h, alpha, beta) || !x || !y) return CUDNN_STATUS_BAD_PARAM;
    if (cudnnStatus_t s = pair_check(xd, yd)) return s;
    if (cudnnStatus_t s = act_check(ad)) return s;
    counted(__func__);
    const double a = scal(alpha), bt = scal(beta);
    int idx[CUDNN_DIM_MAX];
    const int64_t n = count(xd);
    for (int64_t e = 0; e < n; e++) {
        unravel(e, xd->nd, xd->dim, idx);
        const double v = act_fwd(ad, ((const float *)x)[offset(xd, idx)]);
        blend((float *)y + offset(yd, idx), v, a, bt);
    }
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnActivationBackward(cudnnHandle_t h, cudnnActivationDescriptor_t ad, const void *alpha,
                                      const cudnnTensorDescriptor_t yd, const void *y,
                                      const cudnnTensorDescriptor_t dyd, const void *dy,
                                      const cudnnTensorDescriptor_t xd, const void *x, const void *beta,
                                      const cudnnTensorDescriptor_t dxd, void *dx) {
    NLC_EMU_REJECTABLE();
    if (!base_ok(h, alpha, beta) || !y || !dy || !x || !dx) return CUDNN_STATUS_BAD_PARAM;
    if (cudnnStatus_t s = pair_check(yd, dyd)) return s;
    if (cudnnStatus_t s = pair_check(yd, xd)) return s;
    if (cudnnStatus_t s = pair_check(yd, dxd)) return s;
    if (cudnnStatus_t s = act_check(ad)) return s;
    counted(__func__);
    const double a = scal(alpha), bt = scal(beta);
    int idx[CUDNN_DIM_MAX];
    const int64_t n = count(xd);
    for (int64_t e = 0; e < n; e++) {
        unravel(e, xd->nd, xd->dim, idx);
        const double v = act_bwd(ad, ((const float *)x)[offset(xd, idx)], ((const float *)y)[offset(yd, idx)],
                                 ((const float *)dy)[offset(dyd, idx)]);
        blend((float *)dx + offset(dxd, idx), v, a, bt);
    }
    return CUDNN_STATUS_SUCCESS;
}
