/*
 * recurrent.cu - the CUDA twins of recurrent.c's rnn, lstm and gru (NNabla's fused
 * recurrent layers with cuDNN-compatible weight layouts) with every variant the CPU has:
 * num_layers, bidirectional, nonlinearity tanh/relu, optional weight/bias, dropout
 * between layers in training, training = false (backward is then an error).
 *
 * Nothing is planned here: the CPU setup's rnn_state (recurrent_math.h, read from
 * f->state) gives the sizes, the input slots and the layout of what forward saves for
 * backward (the same values at the same offsets, in a device buffer of the node's), and
 * the per-element math (nl_rnn_act, nl_lstm_cell, nl_gru_cell and their backward twins)
 * is the host/device code recurrent.c calls, so the CPU specs test it.
 *   - GEMMs through cuBLAS on row-major matrices (layers.cu's transposed trick): per
 *     (layer, direction) one for the input part of all steps and one per step for the
 *     recurrent part; backward one per step for dh_{t-1}, then two for dW_h (the steps
 *     that read a saved h, and the one that reads h0), one for dW_x and one for the
 *     layer's input gradient.
 *   - One kernel per step for the gates, one thread per (sample, unit); forward writes h
 *     (and c) into the saved sequence, the layer output and, at the last step, h_n (c_n).
 *   - The bias gradient sums each entry's gate gradients in the CPU's order (a thread per
 *     entry), so with equal gate gradients the sums are the CPU's.
 *   - Dropout: the masks are drawn on the host from the engine's (sequential) generator
 *     through nl_rnn_mask_draw, in the CPU's order, uploaded as keep flags from the node's
 *     pinned staging (pinned_stage.cuh, asynchronously), and saved as the CPU saves them
 *     (0 or 1/(1-p)); one seed gives both backends the same masks.
 * accum[i] adds into input i's gradient, else it is overwritten.
 */
#include "common.cuh"
#include "pinned_stage.cuh"
#include <limits.h>
extern "C" {
#include "recurrent_math.h"
}

static const float k_one = 1.0f;

/* Row-major C (M x N) = op(A) (M x K) op(B) (K x N) + beta C, as nl_sgemm computes it:
 * cuBLAS (column-major) computes C^T = op(B)^T op(A)^T. */
static int rm_gemm(cublasHandle_t h, bool ta, bool tb, int M, int N, int K, const float *A, int lda,
                   const float *B, int ldb, float beta, float *C, int ldc) {
    NLC_CUBLAS(cublasSgemm(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &k_one, B,
                           ldb, A, lda, &beta, C, ldc));
    return 0;
}

/* cuBLAS takes int sizes: the rows of all steps (T*B), the gate rows (G*H) and a weight
 * row (In + H <= D*H + H + I) must fit. 0 or -1. */
static int rnn_fits_int(const rnn_state *s) {
    const int64_t lim = INT_MAX, in_max = (s->D * s->H > s->I ? s->D * s->H : s->I) + s->H;
    if (s->T * s->B > lim || s->G * s->H > lim || in_max > lim)
        return nl_error("sizes too large for cuBLAS (T*B = %lld, gates %lld, weight row %lld)",
                        (long long)(s->T * s->B), (long long)(s->G * s->H), (long long)in_max);
    return 0;
}

/* Per-node device state: what forward saves (rnn_state's layout), work buffers. */
struct rnn_dev {
    nlc_buf saved;        /* s->saved floats */
    nlc_buf tmp;          /* gru forward: W_h h_{t-1} (B, G*H) */
    nlc_buf work;         /* backward */
    nlc_buf flags;        /* dropout keep flags, one byte per masked output */
    nlc_pinned_stage stage;   /* the flags drawn on the host, uploaded from here */
    bool forward_done = false;
};

/* One step of one (layer, direction) as the step kernels see it. Sizes: B samples, H
 * units, GH = G*H gate rows, ystride = D*H (a row of the layer output). */
struct step_args {
    int kind;
    bool relu;
    int64_t B, H, GH, ystride;
    float *g;               /* (B, GH) this step's gates: forward pre-activations in, gates out */
    const float *th;        /* gru forward: (B, GH) W_h h_{t-1} */
    const float *bhn;       /* gru: (H) b_hn, NULL without bias */
    const float *hp, *cp;   /* (B, H) previous h, c (lstm) */
    float *ht, *ct, *hv;    /* (B, H) this step's h, c (lstm), W_hn h_{t-1} + b_hn (gru) */
    float *y;               /* forward: this direction's h in the layer output, y[b*ystride + u] */
    float *hn, *cn;         /* forward: (B, H) the last states, NULL before the last step */
    const float *dy;        /* backward: the layer output's gradient at this step, dy[b*ystride + u] */
    float *dg, *dgh;        /* backward: (B, GH) input-side / recurrent-side (gru) gate gradients */
    float *dhn;             /* backward: (B, H) in: the gradient reaching h from step t+1;
                             * out (gru): dh * z, to which the next GEMM adds dgh W_h */
    float *dcn;             /* backward, lstm: (B, H) dc in, dc * f out */
};

/* What forward saved for one (layer, direction) q (rnn_state's layout in sv), with its
 * initial states. */
struct seq_ptrs {
    float *gates, *hs, *cs, *hvs;   /* (T, B, GH) gates; (T, B, H) h, c (lstm), W_hn h + b_hn (gru) */
    const float *h0, *c0;           /* (B, H) initial h, c (lstm) */
};

static seq_ptrs seq_of(const rnn_state *s, float *sv, int64_t q, const float *h0all, const float *c0all) {
    const int64_t BH = s->B * s->H;
    seq_ptrs r;
    r.gates = sv + q * s->n_gates;
    r.hs = sv + s->off_hs + q * s->n_seq;
    r.cs = s->kind == K_LSTM ? sv + s->off_cs + q * s->n_seq : nullptr;
    r.hvs = s->kind == K_GRU ? sv + s->off_hn + q * s->n_seq : nullptr;
    r.h0 = h0all + q * BH;
    r.c0 = c0all ? c0all + q * BH : nullptr;
    return r;
}

/* p's saved-sequence pointers at time t, the step-th of direction d (t = step forward,
 * T-1-step in reverse); the previous state is the initial one at step 0. */
static void step_at(step_args &p, const seq_ptrs &q, int kind, int64_t d, int64_t step, int64_t t) {
    const int64_t BH = p.B * p.H, tp = d == 0 ? t - 1 : t + 1;
    p.hp = step == 0 ? q.h0 : q.hs + tp * BH;
    p.cp = kind == K_LSTM ? (step == 0 ? q.c0 : q.cs + tp * BH) : nullptr;
    p.g = q.gates + t * p.B * p.GH;
    p.ht = q.hs + t * BH;
    p.ct = q.cs ? q.cs + t * BH : nullptr;
    p.hv = q.hvs ? q.hvs + t * BH : nullptr;
}

/* gates: (T*B, GH) += bias (GH) on every row (gru: b_r, b_z, b_in) */
__global__ void k_add_bias(int64_t rows, int64_t GH, const float *__restrict__ bias, float *gates) {
    NLC_LOOP(i, rows * GH) gates[i] += bias[i % GH];
}

/* B*H threads (b, u): the gates and states of one step forward */
__global__ void k_step_fwd(step_args p) {
    NLC_LOOP(k, p.B * p.H) {
        const int64_t b = k / p.H, u = k - b * p.H;
        float *g = p.g + b * p.GH + u;
        float h, c = 0.0f;
        if (p.kind == K_RNN) {
            h = nl_rnn_act(*g, p.relu);
            *g = h;
        } else if (p.kind == K_LSTM) {
            h = nl_lstm_cell(g, p.H, p.cp[k], &c);
            p.ct[k] = c;
        } else {
            h = nl_gru_cell(g, p.th + b * p.GH + u, p.H, p.bhn ? p.bhn[u] : 0.0f, p.hp[k], &p.hv[k]);
        }
        p.ht[k] = h;
        p.y[b * p.ystride + u] = h;
        if (p.hn) p.hn[k] = h;
        if (p.cn) p.cn[k] = c;
    }
}

/* B*H threads (b, u): one step backward, dh = dy + dhn; the gate gradients (and lstm's
 * dc, gru's dh * z) */
__global__ void k_step_bwd(step_args p) {
    NLC_LOOP(k, p.B * p.H) {
        const int64_t b = k / p.H, u = k - b * p.H, o = b * p.GH + u;
        const float dh = p.dy[b * p.ystride + u] + p.dhn[k];
        if (p.kind == K_RNN)
            p.dg[k] = nl_rnn_dact(p.ht[k], dh, p.relu);
        else if (p.kind == K_LSTM)
            p.dcn[k] = nl_lstm_bwd(p.g + o, p.H, p.ct[k], p.cp[k], dh, p.dcn[k], p.dg + o);
        else
            p.dhn[k] = nl_gru_bwd(p.g + o, p.H, p.hp[k], p.hv[k], dh, p.dg + o, p.dgh + o);
    }
}

/* n outputs of a layer: mask = keep where its flag is set, else 0 (saved); out *= mask */
__global__ void k_drop_fwd(int64_t n, const unsigned char *__restrict__ flags, float keep, float *mask, float *out) {
    NLC_LOOP(k, n) {
        const float m = flags[k] ? keep : 0.0f;
        mask[k] = m;
        out[k] *= m;
    }
}

/* n gradients *= the saved mask */
__global__ void k_drop_bwd(int64_t n, const float *__restrict__ mask, float *g) {
    NLC_LOOP(k, n) g[k] *= mask[k];
}

/* db (nb*H) of one (layer, direction); dG, dGh: (T, B, GH). Entry k < GH sums dG[t, b, k],
 * gru's b_hn entry k >= GH = 3H sums dGh[t, b, 2H + k - 3H], over the steps in the CPU's
 * order (step T-1 down to 0; t = step, or T-1-step for the reverse direction; samples in
 * order); from 0, or from db when ACC. */
template <bool ACC>
__global__ void k_bias_grad(int64_t T, int64_t B, int64_t H, int64_t GH, int64_t nbH, bool rev,
                            const float *__restrict__ dG, const float *__restrict__ dGh, float *db) {
    NLC_LOOP(k, nbH) {
        const float *src = k < GH ? dG + k : dGh + 2 * H + (k - GH);
        float acc = ACC ? db[k] : 0.0f;
        for (int64_t step = T - 1; step >= 0; step--) {
            const int64_t t = rev ? T - 1 - step : step;
            for (int64_t b = 0; b < B; b++) acc += src[(t * B + b) * GH];
        }
        db[k] = acc;
    }
}

static int opt_in(nl_func *f, int i, const float **p) {
    *p = nullptr;
    if (i < 0 || !nl_in(f, i)) return 0;
    *p = nlc_in(f, i);
    return *p ? 0 : -1;
}

/* ---- forward ------------------------------------------------------------------------------ */

static int rnn_cuda_forward(nl_func *f) {
    const rnn_state *s = (const rnn_state *)f->state;
    rnn_dev *st = nlc_state<rnn_dev>(f);
    if (!st) return -1;
    const int dev = f->device_id;
    const int64_t T = s->T, B = s->B, H = s->H, D = s->D, L = s->L, GH = s->G * H, TB = T * B;
    const int64_t n_out = TB * D * H;   /* one layer's output */
    if (rnn_fits_int(s)) return -1;
    NLC_PTR(const float *, x, nlc_in(f, s->ix));
    NLC_PTR(const float *, h0all, nlc_in(f, s->ih));
    NLC_PTR(const float *, w0, nlc_in(f, s->iw0));
    const float *c0all, *wl, *ball;
    if (opt_in(f, s->ic, &c0all) || opt_in(f, s->iw, &wl) || opt_in(f, s->ib, &ball)) return -1;
    NLC_PTR(float *, y, nlc_out(f, 0));
    NLC_PTR(float *, hn_out, nlc_out(f, 1));
    float *cn_out = nullptr;
    if (s->kind == K_LSTM && !(cn_out = nlc_out(f, 2))) return -1;
    NLC_PTR(float *, sv, st->saved.get(s->saved, dev));
    float *tmp = nullptr;
    if (s->kind == K_GRU && !(tmp = st->tmp.get(B * GH, dev))) return -1;
    cublasHandle_t h = nlc_cublas(dev);
    if (!h) return -1;
    st->forward_done = false;

    /* the dropout masks of layers 1 .. L-1, drawn as the CPU draws them (layer by layer,
     * element by element; nothing else draws while a function runs forward) */
    const unsigned char *flags = nullptr;
    const float keep = s->drop > 0 ? 1.0f / (1.0f - s->drop) : 1.0f;
    if (s->drop > 0) {
        const int64_t n = (L - 1) * n_out;
        NLC_PTR(unsigned char *, hf, st->stage.get((size_t)n));
        for (int64_t k = 0; k < n; k++) hf[k] = nl_rnn_mask_draw(s->drop, keep) != 0.0f;
        NLC_PTR(unsigned char *, df, (unsigned char *)(void *)st->flags.get(n / 4 + 1, dev));
        if (st->stage.upload(df, (size_t)n)) return -1;
        flags = df;
    }

    step_args p = {};
    p.kind = s->kind;
    p.relu = s->relu;
    p.B = B; p.H = H; p.GH = GH; p.ystride = D * H;
    for (int64_t l = 0; l < L; l++) {
        const float *in = l == 0 ? x : sv + s->off_y + (l - 1) * n_out;
        float *out = l == L - 1 ? y : sv + s->off_y + l * n_out;
        for (int64_t d = 0; d < D; d++) {
            const int64_t q = l * D + d;
            int64_t In;
            const float *W = (l == 0 ? w0 : wl) + nl_rnn_weight_offset(s, l, d, &In);
            const int ld = (int)(In + H);
            const float *bias = ball ? ball + q * s->nb * H : nullptr;
            const seq_ptrs sq = seq_of(s, sv, q, h0all, c0all);
            float *gates = sq.gates;
            /* input part of all steps: gates (T*B, GH) = in (T*B, In) W_x^T (+ bias) */
            if (rm_gemm(h, false, true, (int)TB, (int)GH, (int)In, in, (int)In, W, ld, 0.0f, gates, (int)GH)) return -1;
            if (bias) {
                k_add_bias<<<nlc_blocks(TB * GH), NLC_THREADS>>>(TB, GH, bias, gates);
                NLC_LAUNCHED("rnn (bias)");
            }
            p.bhn = bias && s->kind == K_GRU ? bias + 3 * H : nullptr;
            for (int64_t step = 0; step < T; step++) {
                const int64_t t = d == 0 ? step : T - 1 - step;
                step_at(p, sq, s->kind, d, step, t);
                p.th = tmp;
                p.y = out + t * B * D * H + d * H;
                p.hn = step == T - 1 ? hn_out + q * B * H : nullptr;
                p.cn = step == T - 1 && cn_out ? cn_out + q * B * H : nullptr;
                /* recurrent part: gru tmp (B, GH) = h_{t-1} W_h^T; rnn/lstm: added to the gates */
                if (s->kind == K_GRU) {
                    if (rm_gemm(h, false, true, (int)B, (int)GH, (int)H, p.hp, (int)H, W + In, ld, 0.0f, tmp, (int)GH))
                        return -1;
                } else if (rm_gemm(h, false, true, (int)B, (int)GH, (int)H, p.hp, (int)H, W + In, ld, 1.0f, p.g,
                                   (int)GH)) {
                    return -1;
                }
                k_step_fwd<<<nlc_blocks(B * H), NLC_THREADS>>>(p);
                NLC_LAUNCHED("rnn (step)");
            }
        }
        /* dropout before the next layer: out *= mask, mask = 0 or 1/(1-p) (saved) */
        if (flags && l < L - 1) {
            k_drop_fwd<<<nlc_blocks(n_out), NLC_THREADS>>>(n_out, flags + l * n_out, keep,
                                                           sv + s->off_mask + l * n_out, out);
            NLC_LAUNCHED("rnn (dropout)");
        }
    }
    st->forward_done = true;
    return 0;
}

/* ---- backward through time ---------------------------------------------------------------- */

static int rnn_cuda_backward(nl_func *f, const bool *prop, const bool *accum) {
    const rnn_state *s = (const rnn_state *)f->state;
    bool any = false;
    for (int i = 0; i < f->n_in; i++) any |= f->in[i] && prop[i];
    if (!any) return 0;
    if (!s->training) return nl_error("built with training = false: backward is not available");
    rnn_dev *st = nlc_state<rnn_dev>(f);
    if (!st) return -1;
    if (!st->forward_done || !st->saved.p) return nl_error("forward must run before backward");
    const int dev = f->device_id;
    const int64_t T = s->T, B = s->B, H = s->H, D = s->D, L = s->L, GH = s->G * H, TB = T * B;
    const int64_t n_out = TB * D * H;
    const bool gru = s->kind == K_GRU;
    const bool px = prop[s->ix], ph = prop[s->ih], pc = s->ic >= 0 && prop[s->ic];
    const bool pw0 = prop[s->iw0], pw = s->iw >= 0 && prop[s->iw], pb = s->ib >= 0 && prop[s->ib];
    NLC_PTR(const float *, x, nlc_in(f, s->ix));
    NLC_PTR(const float *, h0all, nlc_in(f, s->ih));
    NLC_PTR(const float *, w0, nlc_in(f, s->iw0));
    const float *c0all, *wl;
    if (opt_in(f, s->ic, &c0all) || opt_in(f, s->iw, &wl)) return -1;
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    NLC_PTR(const float *, dhn, nlc_out_grad(f, 1));
    const float *dcn = nullptr;
    if (s->kind == K_LSTM && !(dcn = nlc_out_grad(f, 2))) return -1;
    float *sv = st->saved.p;   /* read only here */
    /* gradients wanted: the weights' and the bias' zeroed unless accumulating, then added into */
    float *dx = nullptr, *dh0 = nullptr, *dc0 = nullptr, *dw0 = nullptr, *dw = nullptr, *db = nullptr;
    if (px && !(dx = nlc_in_grad(f, s->ix, accum[s->ix]))) return -1;
    if (ph && !(dh0 = nlc_in_grad(f, s->ih, accum[s->ih]))) return -1;
    if (pc && !(dc0 = nlc_in_grad(f, s->ic, accum[s->ic]))) return -1;
    if (pw0 && !(dw0 = nlc_in_grad(f, s->iw0, accum[s->iw0]))) return -1;
    if (pw && !(dw = nlc_in_grad(f, s->iw, accum[s->iw]))) return -1;
    if (pb && !(db = nlc_in_grad(f, s->ib, accum[s->ib]))) return -1;
    if (pw0 && nlc_clear_grad(f, dw0, s->iw0, accum[s->iw0])) return -1;
    if (pw && nlc_clear_grad(f, dw, s->iw, accum[s->iw])) return -1;
    cublasHandle_t h = nlc_cublas(dev);
    if (!h) return -1;
    /* work: two layer-gradient buffers (T*B*D*H), gate gradients of every step (T*B*GH;
     * gru: recurrent-side ones too), dh and dc reaching the previous step (B*H each) */
    const int64_t seqbuf = L > 1 ? n_out : 0;
    NLC_PTR(float *, wk, st->work.get(2 * seqbuf + (gru ? 2 : 1) * TB * GH + 2 * B * H, dev));
    float *bufs[2] = {wk, wk + seqbuf};
    float *dG = wk + 2 * seqbuf, *dGh = gru ? dG + TB * GH : dG;
    float *dhn_ = dG + (gru ? 2 : 1) * TB * GH, *dcn_ = dhn_ + B * H;

    step_args p = {};
    p.kind = s->kind;
    p.relu = s->relu;
    p.B = B; p.H = H; p.GH = GH; p.ystride = D * H;
    p.dhn = dhn_;
    p.dcn = dcn_;
    for (int64_t l = L - 1; l >= 0; l--) {
        if (s->drop > 0 && l < L - 1) {   /* through the dropout after layer l */
            k_drop_bwd<<<nlc_blocks(n_out), NLC_THREADS>>>(n_out, sv + s->off_mask + l * n_out, bufs[l & 1]);
            NLC_LAUNCHED("rnn (dropout backward)");
        }
        const float *dYl = l == L - 1 ? dy : bufs[l & 1];
        const float *in = l == 0 ? x : sv + s->off_y + (l - 1) * n_out;
        float *dX = l == 0 ? dx : bufs[(l - 1) & 1];
        bool dX_accum = l == 0 ? (px && accum[s->ix]) : false;
        const bool want_dX = l > 0 || px;
        for (int64_t d = 0; d < D; d++) {
            const int64_t q = l * D + d;
            int64_t In;
            const int64_t woff = nl_rnn_weight_offset(s, l, d, &In);
            const float *W = (l == 0 ? w0 : wl) + woff;
            const int ld = (int)(In + H);
            float *dW = l == 0 ? (dw0 ? dw0 + woff : nullptr) : (dw ? dw + woff : nullptr);
            const seq_ptrs sq = seq_of(s, sv, q, h0all, c0all);
            NLC_CUDA(cudaMemcpyAsync(dhn_, dhn + q * B * H, (size_t)(B * H) * sizeof(float), cudaMemcpyDeviceToDevice));
            if (dcn)
                NLC_CUDA(cudaMemcpyAsync(dcn_, dcn + q * B * H, (size_t)(B * H) * sizeof(float),
                                         cudaMemcpyDeviceToDevice));
            for (int64_t step = T - 1; step >= 0; step--) {
                const int64_t t = d == 0 ? step : T - 1 - step;
                step_at(p, sq, s->kind, d, step, t);
                p.dy = dYl + t * B * D * H + d * H;
                p.dg = dG + t * B * GH;
                p.dgh = dGh + t * B * GH;
                k_step_bwd<<<nlc_blocks(B * H), NLC_THREADS>>>(p);
                NLC_LAUNCHED("rnn (step backward)");
                /* dh_{t-1} (B, H) = dgh W_h (+ dh * z for gru) */
                if (rm_gemm(h, false, false, (int)B, (int)H, (int)GH, p.dgh, (int)GH, W + In, ld, gru ? 1.0f : 0.0f,
                            dhn_, (int)H))
                    return -1;
            }
            if (dW) {
                /* dW_h += sum over steps of dgh^T h_{t-1}: the steps that read a saved h
                 * (forward: t = 1..T-1 read h[t-1]; reverse: t = 0..T-2 read h[t+1]), then
                 * the one that reads h0 */
                if (T > 1 && rm_gemm(h, true, false, (int)GH, (int)H, (int)((T - 1) * B),
                                     d == 0 ? dGh + B * GH : dGh, (int)GH, d == 0 ? sq.hs : sq.hs + B * H, (int)H, 1.0f,
                                     dW + In, ld))
                    return -1;
                const int64_t t0 = d == 0 ? 0 : T - 1;
                if (rm_gemm(h, true, false, (int)GH, (int)H, (int)B, dGh + t0 * B * GH, (int)GH, sq.h0, (int)H, 1.0f,
                            dW + In, ld))
                    return -1;
            }
            if (db) {
                float *dB = db + q * s->nb * H;
                const int64_t nbH = s->nb * H;
                if (accum[s->ib]) k_bias_grad<true><<<nlc_blocks(nbH), NLC_THREADS>>>(T, B, H, GH, nbH, d == 1, dG, dGh, dB);
                else k_bias_grad<false><<<nlc_blocks(nbH), NLC_THREADS>>>(T, B, H, GH, nbH, d == 1, dG, dGh, dB);
                NLC_LAUNCHED("rnn (bias gradient)");
            }
            /* initial states */
            if (dh0 && nlc_axpby(dev, dhn_, dh0 + q * B * H, B * H, 1.0f, accum[s->ih])) return -1;
            if (dc0 && nlc_axpby(dev, dcn_, dc0 + q * B * H, B * H, 1.0f, accum[s->ic])) return -1;
            /* dW_x += dG^T in; dX (+)= dG W_x */
            if (dW && rm_gemm(h, true, false, (int)GH, (int)In, (int)TB, dG, (int)GH, in, (int)In, 1.0f, dW, ld))
                return -1;
            if (want_dX) {
                if (rm_gemm(h, false, false, (int)TB, (int)In, (int)GH, dG, (int)GH, W, ld, dX_accum ? 1.0f : 0.0f, dX,
                            (int)In))
                    return -1;
                dX_accum = true;
            }
        }
    }
    return 0;
}

int nlc_register_recurrent(void) {
    if (nlc_register("rnn", "cuda", rnn_cuda_forward, rnn_cuda_backward)) return -1;
    if (nlc_register("lstm", "cuda", rnn_cuda_forward, rnn_cuda_backward)) return -1;
    if (nlc_register("gru", "cuda", rnn_cuda_forward, rnn_cuda_backward)) return -1;
    return 0;
}
