/*
 * cuda/emu/cudnn_emu_conv.cpp - TEST-ONLY CPU emulation of cuDNN's convolution calls
 * (cuda/emu/cudnn.h): output dims, the _v7 algorithm queries, workspace sizes, forward,
 * backward data, backward filter, backward bias, and cudnnAddTensor. 4-d (2 spatial axes)
 * and 5-d (3) float tensors with any strides; packed NCHW (KCRS) filters with
 * filter dims (K, C/groups, ...); pad, stride, dilation, groups; CUDNN_CROSS_CORRELATION,
 * or CUDNN_CONVOLUTION (the filter flipped on every spatial axis). Plain loops with double
 * accumulation; y = alpha * result + beta * y, y not read when beta is 0.
 * Algorithms: the queries rank two that work -- one needing a workspace (which the call
 * checks it got, and scribbles over, as scratch) and one needing none -- before the
 * others, listed with CUDNN_STATUS_NOT_SUPPORTED as cuDNN lists unusable ones.
 * Every query and call here but the output-size one can be refused with
 * CUDNN_STATUS_NOT_SUPPORTED by the test knob NNLUA_CUDA_EMU_CUDNN_REJECT (cudnn_emu.cpp).
 */
#include "cudnn_emu_impl.h"
#include <string.h>
#include <vector>

using namespace nlc_cudnn_emu;

namespace {

/* out spatial size of one axis; < 1 when the dilated filter is longer than the padded input */
int out_size(int in, int pad, int k, int dil, int stride) {
    const long long span = (long long)in + 2LL * pad - ((long long)(k - 1) * dil + 1);
    return span < 0 ? 0 : (int)(1 + span / stride);
}

cudnnStatus_t out_dims(const nlc_emu_cudnn_conv *cd, const tensor *x, const nlc_emu_cudnn_filter *w, int nd, int *o) {
    if (!cd || !x || !w || !o || !cd->set || !x->set || !w->set) return CUDNN_STATUS_BAD_PARAM;
    if (nd != x->nd || x->nd != w->nd || cd->n != x->nd - 2) return CUDNN_STATUS_BAD_PARAM;
    if ((long long)x->dim[1] != (long long)w->dim[1] * cd->groups) return CUDNN_STATUS_BAD_PARAM;
    o[0] = x->dim[0];
    o[1] = w->dim[0];
    for (int i = 0; i < cd->n; i++) {
        o[2 + i] = out_size(x->dim[2 + i], cd->pad[i], w->dim[2 + i], cd->dil[i], cd->stride[i]);
        if (o[2 + i] < 1) return CUDNN_STATUS_BAD_PARAM;
    }
    return CUDNN_STATUS_SUCCESS;
}

/* A convolution x (n, c, in...) * w (k, cg, ker...) -> y (n, k, out...), as 3 spatial axes
 * (a 4-d problem gets a leading axis of size 1). */
struct geom {
    int64_t n, c, k, groups, cg, kg;
    int in[3], out[3], ker[3], pad[3], str[3], dil[3];
    bool flip;
    int64_t xs[5], ys[5];
    int64_t in_sp() const { return (int64_t)in[0] * in[1] * in[2]; }
    int64_t out_sp() const { return (int64_t)out[0] * out[1] * out[2]; }
    int64_t ker_sp() const { return (int64_t)ker[0] * ker[1] * ker[2]; }
    int64_t x_at(int64_t b, int64_t ch, const int *i) const {
        return b * xs[0] + ch * xs[1] + i[0] * xs[2] + i[1] * xs[3] + i[2] * xs[4];
    }
    int64_t y_at(int64_t b, int64_t ch, const int *o) const {
        return b * ys[0] + ch * ys[1] + o[0] * ys[2] + o[1] * ys[3] + o[2] * ys[4];
    }
    /* packed KCRS offset of filter tap r (already flipped when needed) */
    int64_t w_at(int64_t kk, int64_t ch, const int *r) const {
        return (((kk * cg + ch) * ker[0] + r[0]) * ker[1] + r[1]) * ker[2] + r[2];
    }
};

void to5(const tensor *t, int64_t *s) {
    if (t->nd == 5) {
        for (int k = 0; k < 5; k++) s[k] = t->stride[k];
    } else {
        s[0] = t->stride[0]; s[1] = t->stride[1]; s[2] = 0; s[3] = t->stride[2]; s[4] = t->stride[3];
    }
}

cudnnStatus_t make_geom(const tensor *x, const nlc_emu_cudnn_filter *w, const nlc_emu_cudnn_conv *cd, const tensor *y,
                        geom *g) {
    if (!x || !w || !cd || !y || !x->set || !w->set || !cd->set || !y->set) return CUDNN_STATUS_BAD_PARAM;
    if (x->type != y->type || x->type != w->type) return CUDNN_STATUS_BAD_PARAM;
    if (x->type != CUDNN_DATA_FLOAT || cd->compute != CUDNN_DATA_FLOAT) return CUDNN_STATUS_NOT_SUPPORTED;
    if (w->format != CUDNN_TENSOR_NCHW) return CUDNN_STATUS_NOT_SUPPORTED;   /* not emulated */
    if (x->nd != 4 && x->nd != 5) return CUDNN_STATUS_NOT_SUPPORTED;
    int o[CUDNN_DIM_MAX];
    if (cudnnStatus_t s = out_dims(cd, x, w, x->nd, o)) return s;
    if (y->nd != x->nd) return CUDNN_STATUS_BAD_PARAM;
    for (int k = 0; k < y->nd; k++)
        if (y->dim[k] != o[k]) return CUDNN_STATUS_BAD_PARAM;
    if (w->dim[0] % cd->groups) return CUDNN_STATUS_BAD_PARAM;
    const int lead = 5 - x->nd;                       /* 1 for a 4-d problem */
    g->n = x->dim[0]; g->c = x->dim[1]; g->k = w->dim[0]; g->groups = cd->groups;
    g->cg = w->dim[1]; g->kg = g->k / g->groups;
    for (int i = 0; i < 3; i++) {
        const int j = i - lead;                       /* spatial axis of the descriptors */
        g->in[i] = j < 0 ? 1 : x->dim[2 + j];
        g->out[i] = j < 0 ? 1 : y->dim[2 + j];
        g->ker[i] = j < 0 ? 1 : w->dim[2 + j];
        g->pad[i] = j < 0 ? 0 : cd->pad[j];
        g->str[i] = j < 0 ? 1 : cd->stride[j];
        g->dil[i] = j < 0 ? 1 : cd->dil[j];
    }
    g->flip = cd->mode == CUDNN_CONVOLUTION;
    to5(x, g->xs);
    to5(y, g->ys);
    return CUDNN_STATUS_SUCCESS;
}

/* Calls fn(b, kk, ch, o, i, r): every (output position, filter tap) pair whose input
 * position is inside the image: batch b, output channel kk, its group's input channel
 * ch (0..cg), output position o, input position i, filter tap r (flipped if needed). */
template <class F> void each_tap(const geom &g, F fn) {
    int o[3], i[3], r[3], t[3];
    for (int64_t b = 0; b < g.n; b++)
        for (int64_t kk = 0; kk < g.k; kk++)
            for (int64_t op = 0; op < g.out_sp(); op++) {
                unravel(op, 3, g.out, o);
                for (int64_t ch = 0; ch < g.cg; ch++)
                    for (int64_t tp = 0; tp < g.ker_sp(); tp++) {
                        unravel(tp, 3, g.ker, t);
                        bool in = true;
                        for (int a = 0; a < 3; a++) {
                            i[a] = o[a] * g.str[a] - g.pad[a] + t[a] * g.dil[a];
                            in = in && i[a] >= 0 && i[a] < g.in[a];
                            r[a] = g.flip ? g.ker[a] - 1 - t[a] : t[a];
                        }
                        if (in) fn(b, kk, ch, o, i, r);
                    }
            }
}

size_t ws_fwd(const geom &g, int algo) {
    if (algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM) return 0;
    if (algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM) return sizeof(int) * (size_t)(g.ker_sp() * g.out_sp());
    return (size_t)-1;
}
size_t ws_bwd_data(const geom &g, int algo) {
    if (algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0) return 0;
    if (algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_1) return sizeof(int) * (size_t)(g.ker_sp() * g.in_sp());
    return (size_t)-1;
}
size_t ws_bwd_filter(const geom &g, int algo) {
    if (algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0) return 0;
    if (algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1) return sizeof(float) * (size_t)(g.k * g.cg * g.ker_sp());
    return (size_t)-1;
}

/* The ranked list: algo `first` (workspace), algo 0 (none; non-deterministic for the
 * backward ones, as cuDNN documents), then the rest, unsupported. */
template <class Perf, class Algo>
void rank(const geom &g, const nlc_emu_cudnn_conv *cd, int count, int first, size_t (*ws)(const geom &, int),
          bool nondet0, int requested, int *returned, Perf *perf) {
    int order[16], n = 0;
    order[n++] = first;
    order[n++] = 0;
    for (int a = 0; a < count; a++)
        if (a != first && a != 0) order[n++] = a;
    *returned = requested < n ? requested : n;
    for (int i = 0; i < *returned; i++) {
        Perf p;
        memset(&p, 0, sizeof p);
        p.algo = (Algo)order[i];
        const size_t bytes = ws(g, order[i]);
        p.status = bytes == (size_t)-1 ? CUDNN_STATUS_NOT_SUPPORTED : CUDNN_STATUS_SUCCESS;
        p.time = p.status == CUDNN_STATUS_SUCCESS ? 0.01f * (float)(i + 1) : -1.0f;
        p.memory = p.status == CUDNN_STATUS_SUCCESS ? bytes : 0;
        p.determinism = order[i] == 0 && nondet0 ? CUDNN_NON_DETERMINISTIC : CUDNN_DETERMINISTIC;
        p.mathType = cd->math == CUDNN_FMA_MATH ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH;
        perf[i] = p;
    }
}

/* the workspace a call was given: enough of it, then used as scratch */
cudnnStatus_t take_ws(size_t need, void *ws, size_t have) {
    if (need == (size_t)-1) return CUDNN_STATUS_NOT_SUPPORTED;
    if (need > 0 && (!ws || have < need)) return CUDNN_STATUS_BAD_PARAM;
    if (need > 0) memset(ws, 0xa5, need);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t common(cudnnHandle_t h, const void *alpha, const void *beta, const void *a, const void *b, void *out) {
    if (!handle_ok(h)) return CUDNN_STATUS_BAD_PARAM;
    if (!alpha || !beta || !a || !b || !out) return CUDNN_STATUS_BAD_PARAM;
    return CUDNN_STATUS_SUCCESS;
}

}  // namespace

cudnnStatus_t cudnnGetConvolutionNdForwardOutputDim(const cudnnConvolutionDescriptor_t cd, const cudnnTensorDescriptor_t x,
                                                    const cudnnFilterDescriptor_t w, int nbDims, int o[]) {
    return out_dims(cd, x, w, nbDims, o);
}

/* ---- algorithms and workspaces ---------------------------------------------------------------- */

cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t h, const cudnnTensorDescriptor_t x,
                                                     const cudnnFilterDescriptor_t w, const cudnnConvolutionDescriptor_t cd,
                                                     const cudnnTensorDescriptor_t y, const int requested,
                                                     int *returned, cudnnConvolutionFwdAlgoPerf_t *perf) {
    NLC_EMU_REJECTABLE();
    geom g;
    if (!handle_ok(h) || !returned || !perf || requested < 1) return CUDNN_STATUS_BAD_PARAM;
    if (cudnnStatus_t s = make_geom(x, w, cd, y, &g)) return s;
    rank<cudnnConvolutionFwdAlgoPerf_t, cudnnConvolutionFwdAlgo_t>(
        g, cd, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, ws_fwd, false, requested,
        returned, perf);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnnHandle_t h, const cudnnFilterDescriptor_t w,
                                                          const cudnnTensorDescriptor_t dy,
                                                          const cudnnConvolutionDescriptor_t cd,
                                                          const cudnnTensorDescriptor_t dx, const int requested,
                                                          int *returned, cudnnConvolutionBwdDataAlgoPerf_t *perf) {
    NLC_EMU_REJECTABLE();
    geom g;
    if (!handle_ok(h) || !returned || !perf || requested < 1) return CUDNN_STATUS_BAD_PARAM;
    if (cudnnStatus_t s = make_geom(dx, w, cd, dy, &g)) return s;
    rank<cudnnConvolutionBwdDataAlgoPerf_t, cudnnConvolutionBwdDataAlgo_t>(
        g, cd, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, ws_bwd_data, true, requested,
        returned, perf);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnnHandle_t h, const cudnnTensorDescriptor_t x,
                                                            const cudnnTensorDescriptor_t dy,
                                                            const cudnnConvolutionDescriptor_t cd,
                                                            const cudnnFilterDescriptor_t dw, const int requested,
                                                            int *returned, cudnnConvolutionBwdFilterAlgoPerf_t *perf) {
    NLC_EMU_REJECTABLE();
    geom g;
    if (!handle_ok(h) || !returned || !perf || requested < 1) return CUDNN_STATUS_BAD_PARAM;
    if (cudnnStatus_t s = make_geom(x, dw, cd, dy, &g)) return s;
    rank<cudnnConvolutionBwdFilterAlgoPerf_t, cudnnConvolutionBwdFilterAlgo_t>(
        g, cd, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, ws_bwd_filter, true, requested,
        returned, perf);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t h, const cudnnTensorDescriptor_t x,
                                                      const cudnnFilterDescriptor_t w,
                                                      const cudnnConvolutionDescriptor_t cd,
                                                      const cudnnTensorDescriptor_t y, cudnnConvolutionFwdAlgo_t algo,
                                                      size_t *bytes) {
    NLC_EMU_REJECTABLE();
    geom g;
    if (!handle_ok(h) || !bytes) return CUDNN_STATUS_BAD_PARAM;
    if (cudnnStatus_t s = make_geom(x, w, cd, y, &g)) return s;
    const size_t b = ws_fwd(g, algo);
    if (b == (size_t)-1) return CUDNN_STATUS_NOT_SUPPORTED;
    *bytes = b;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(cudnnHandle_t h, const cudnnFilterDescriptor_t w,
                                                           const cudnnTensorDescriptor_t dy,
                                                           const cudnnConvolutionDescriptor_t cd,
                                                           const cudnnTensorDescriptor_t dx,
                                                           cudnnConvolutionBwdDataAlgo_t algo, size_t *bytes) {
    NLC_EMU_REJECTABLE();
    geom g;
    if (!handle_ok(h) || !bytes) return CUDNN_STATUS_BAD_PARAM;
    if (cudnnStatus_t s = make_geom(dx, w, cd, dy, &g)) return s;
    const size_t b = ws_bwd_data(g, algo);
    if (b == (size_t)-1) return CUDNN_STATUS_NOT_SUPPORTED;
    *bytes = b;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnnHandle_t h, const cudnnTensorDescriptor_t x,
                                                             const cudnnTensorDescriptor_t dy,
                                                             const cudnnConvolutionDescriptor_t cd,
                                                             const cudnnFilterDescriptor_t dw,
                                                             cudnnConvolutionBwdFilterAlgo_t algo, size_t *bytes) {
    NLC_EMU_REJECTABLE();
    geom g;
    if (!handle_ok(h) || !bytes) return CUDNN_STATUS_BAD_PARAM;
    if (cudnnStatus_t s = make_geom(x, dw, cd, dy, &g)) return s;
    const size_t b = ws_bwd_filter(g, algo);
    if (b == (size_t)-1) return CUDNN_STATUS_NOT_SUPPORTED;
    *bytes = b;
    return CUDNN_STATUS_SUCCESS;
}

/* ---- the convolutions ------------------------------------------------------------------------- */

/* y = alpha * conv(x, w) + beta * y */
cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t h, const void *alpha, const cudnnTensorDescriptor_t xd, const void *x,
                                      const cudnnFilterDescriptor_t wd, const void *w,
                                      const cudnnConvolutionDescriptor_t cd, cudnnConvolutionFwdAlgo_t algo, void *ws,
                                      size_t ws_bytes, const void *beta, const cudnnTensorDescriptor_t yd, void *y) {
    NLC_EMU_REJECTABLE();
    geom g;
    if (cudnnStatus_t s = common(h, alpha, beta, x, w, y)) return s;
    if (cudnnStatus_t s = make_geom(xd, wd, cd, yd, &g)) return s;
    if (cudnnStatus_t s = take_ws(ws_fwd(g, algo), ws, ws_bytes)) return s;
    counted(__func__);
    const float *X = (const float *)x, *W = (const float *)w;
    std::vector<double> acc((size_t)(g.n * g.k * g.out_sp()), 0.0);
    each_tap(g, [&](int64_t b, int64_t kk, int64_t ch, const int *o, const int *i, const int *r) {
        const int64_t cin = kk / g.kg * g.cg + ch;
        acc[(size_t)((b * g.k + kk) * g.out_sp() + ((int64_t)o[0] * g.out[1] + o[1]) * g.out[2] + o[2])] +=
            (double)X[g.x_at(b, cin, i)] * (double)W[g.w_at(kk, ch, r)];
    });
    const double a = scal(alpha), bt = scal(beta);
    int o[3];
    for (int64_t b = 0; b < g.n; b++)
        for (int64_t kk = 0; kk < g.k; kk++)
            for (int64_t op = 0; op < g.out_sp(); op++) {
                unravel(op, 3, g.out, o);
                blend((float *)y + g.y_at(b, kk, o), acc[(size_t)((b * g.k + kk) * g.out_sp() + op)], a, bt);
            }
    return CUDNN_STATUS_SUCCESS;
}

/* dx = alpha * conv^T(dy, w) + beta * dx */
cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t h, const void *alpha, const cudnnFilterDescriptor_t wd,
                                           const void *w, const cudnnTensorDescriptor_t dyd, const void *dy,
                                           const cudnnConvolutionDescriptor_t cd, cudnnConvolutionBwdDataAlgo_t algo,
                                           void *ws, size_t ws_bytes, const void *beta,
                                           const cudnnTensorDescriptor_t dxd, void *dx) {
    NLC_EMU_REJECTABLE();
    geom g;
    if (cudnnStatus_t s = common(h, alpha, beta, w, dy, dx)) return s;
    if (cudnnStatus_t s = make_geom(dxd, wd, cd, dyd, &g)) return s;
    if (cudnnStatus_t s = take_ws(ws_bwd_data(g, algo), ws, ws_bytes)) return s;
    counted(__func__);
    const float *W = (const float *)w, *DY = (const float *)dy;
    std::vector<double> acc((size_t)(g.n * g.c * g.in_sp()), 0.0);
    each_tap(g, [&](int64_t b, int64_t kk, int64_t ch, const int *o, const int *i, const int *r) {
        const int64_t cin = kk / g.kg * g.cg + ch;
        acc[(size_t)((b * g.c + cin) * g.in_sp() + ((int64_t)i[0] * g.in[1] + i[1]) * g.in[2] + i[2])] +=
            (double)DY[g.y_at(b, kk, o)] * (double)W[g.w_at(kk, ch, r)];
    });
    const double a = scal(alpha), bt = scal(beta);
    int i[3];
    for (int64_t b = 0; b < g.n; b++)
        for (int64_t c = 0; c < g.c; c++)
            for (int64_t ip = 0; ip < g.in_sp(); ip++) {
                unravel(ip, 3, g.in, i);
                blend((float *)dx + g.x_at(b, c, i), acc[(size_t)((b * g.c + c) * g.in_sp() + ip)], a, bt);
            }
    return CUDNN_STATUS_SUCCESS;
}

/* dw = alpha * d conv / d w (x, dy) + beta * dw */
cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t h, const void *alpha, const cudnnTensorDescriptor_t xd,
                                             const void *x, const cudnnTensorDescriptor_t dyd, const void *dy,
                                             const cudnnConvolutionDescriptor_t cd,
                                             cudnnConvolutionBwdFilterAlgo_t algo, void *ws, size_t ws_bytes,
                                             const void *beta, const cudnnFilterDescriptor_t dwd, void *dw) {
    NLC_EMU_REJECTABLE();
    geom g;
    if (cudnnStatus_t s = common(h, alpha, beta, x, dy, dw)) return s;
    if (cudnnStatus_t s = make_geom(xd, dwd, cd, dyd, &g)) return s;
    if (cudnnStatus_t s = take_ws(ws_bwd_filter(g, algo), ws, ws_bytes)) return s;
    counted(__func__);
    const float *X = (const float *)x, *DY = (const float *)dy;
    std::vector<double> acc((size_t)(g.k * g.cg * g.ker_sp()), 0.0);
    each_tap(g, [&](int64_t b, int64_t kk, int64_t ch, const int *o, const int *i, const int *r) {
        const int64_t cin = kk / g.kg * g.cg + ch;
        acc[(size_t)g.w_at(kk, ch, r)] += (double)X[g.x_at(b, cin, i)] * (double)DY[g.y_at(b, kk, o)];
    });
    const double a = scal(alpha), bt = scal(beta);
    for (size_t j = 0; j < acc.size(); j++) blend((float *)dw + j, acc[j], a, bt);
    return CUDNN_STATUS_SUCCESS;
}

/* db (1, K, 1, 1[, 1]) = alpha * sum of dy over all but the channel axis + beta * db */
cudnnStatus_t cudnnConvolutionBackwardBias(cudnnHandle_t h, const void *alpha, const cudnnTensorDescriptor_t dyd,
                                           const void *dy, const void *beta, const cudnnTensorDescriptor_t dbd,
                                           void *db) {
    NLC_EMU_REJECTABLE();
    if (cudnnStatus_t s = common(h, alpha, beta, dy, dy, db)) return s;
    if (!dyd || !dbd || !dyd->set || !dbd->set) return CUDNN_STATUS_BAD_PARAM;
    if (dyd->type != dbd->type) return CUDNN_STATUS_BAD_PARAM;
    if (!float_tensor(dyd)) return CUDNN_STATUS_NOT_SUPPORTED;
    if (dyd->nd != dbd->nd || (dyd->nd != 4 && dyd->nd != 5)) return CUDNN_STATUS_BAD_PARAM;
    for (int k = 0; k < dbd->nd; k++)
        if (dbd->dim[k] != (k == 1 ? dyd->dim[1] : 1)) return CUDNN_STATUS_BAD_PARAM;
    counted(__func__);
    bool red[CUDNN_DIM_MAX];
    for (int k = 0; k < dyd->nd; k++) red[k] = k != 1;
    const split sp(dyd, red);
    const double a = scal(alpha), bt = scal(beta);
    int idx[CUDNN_DIM_MAX], bidx[CUDNN_DIM_MAX] = {0};
    for (int64_t c = 0; c < sp.slots; c++) {
        double s = 0.0;
        for (int64_t r = 0; r < sp.per; r++) {
            sp.index(c, r, idx);
            s += ((const float *)dy)[offset(dyd, idx)];
        }
        bidx[1] = (int)c;
        blend((float *)db + offset(dbd, bidx), s, a, bt);
    }
    return CUDNN_STATUS_SUCCESS;
}

/* C = alpha * A + beta * C, A broadcast over the axes where its size is 1 */
cudnnStatus_t cudnnAddTensor(cudnnHandle_t h, const void *alpha, const cudnnTensorDescriptor_t ad, const void *A,
                             const void *beta, const cudnnTensorDescriptor_t cd, void *C) {
    NLC_EMU_REJECTABLE();
    if (cudnnStatus_t s = common(h, alpha, beta, A, A, C)) return s;
    if (!ad || !cd || !ad->set || !cd->set) return CUDNN_STATUS_BAD_PARAM;
    if (ad->nd > 5 || cd->nd > 5) return CUDNN_STATUS_BAD_PARAM;
    if (ad->type != cd->type || ad->nd != cd->nd) return CUDNN_STATUS_NOT_SUPPORTED;
    if (!float_tensor(cd)) return CUDNN_STATUS_NOT_SUPPORTED;
    for (int k = 0; k < cd->nd; k++)
        if (ad->dim[k] != cd->dim[k] && ad->dim[k] != 1) return CUDNN_STATUS_NOT_SUPPORTED;
    counted(__func__);
    const double a = scal(alpha), bt = scal(beta);
    int idx[CUDNN_DIM_MAX], aidx[CUDNN_DIM_MAX];
    const int64_t n = count(cd);
    for (int64_t e = 0; e < n; e++) {
        unravel(e, cd->nd, cd->dim, idx);
        for (int k = 0; k < cd->nd; k++) aidx[k] = ad->dim[k] == 1 ? 0 : idx[k];
        blend((float *)C + offset(cd, idx), ((const float *)A)[offset(ad, aidx)], a, bt);
    }
    return CUDNN_STATUS_SUCCESS;
}
