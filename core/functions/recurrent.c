/*
 * recurrent.c - NNabla's fused recurrent layers with their cuDNN-compatible weight layouts
 * (build-tools/code_generator/functions.yaml; src/nbla/function/generic/{rnn,lstm,gru}.cpp):
 *
 *   rnn(x, h, weight_l0, [weight], [bias], num_layers=1, nonlinearity='tanh', dropout=0,
 *       bidirectional=false, training=true)                         -> y, h_n
 *   lstm(x, h, c, weight_l0, [weight], [bias], num_layers=1, dropout=0, bidirectional=false,
 *        training=true)                                              -> y, h_n, c_n
 *   gru(x, h, weight_l0, [weight], [bias], num_layers=1, dropout=0, bidirectional=false,
 *       training=true)                                               -> y, h_n
 *
 * Shapes (T steps, B batch, I inputs, H hidden, L = num_layers, D = 2 if bidirectional else 1,
 * G gates: rnn 1, lstm 4, gru 3):
 *   x (T, B, I); h, c (L, D, B, H); y (T, B, D*H) laid out as (T, B, D, H); h_n, c_n (L, D, B, H)
 *   weight_l0: rnn (D, H, I+H), lstm (D, 4, H, I+H), gru (D, 3, H, I+H)
 *   weight (layers 2..L): rnn (L-1, D, H, D*H+H), lstm/gru (L-1, D, G, H, D*H+H)
 *   bias: rnn (L, D, H), lstm (L, D, 4, H), gru (L, D, 4, H)
 * Each gate's weight W_k (H, In+H) multiplies the concatenation [x_t, h_{t-1}]:
 *   rnn:  h = act(W [x, h] + b)                       act = tanh or relu
 *   lstm: gates in the order i, f, g, o (cuDNN's):   i, f, o = sigmoid(W_k [x, h] + b_k),
 *         g = tanh(W_g [x, h] + b_g); c = f*c + i*g; h = o*tanh(c)
 *   gru:  gates r, z, n; bias blocks b_r, b_z, b_in, b_hn:
 *         r = sigmoid(W_r [x, h] + b_r), z = sigmoid(W_z [x, h] + b_z),
 *         n = tanh(W_n[:, :In] x + b_in + r * (W_n[:, In:] h + b_hn)), h = (1-z)*n + z*h
 * Layer l > 1 reads layer l-1's output (T, B, D*H); the reverse direction runs from t = T
 * down to 1 and writes its half of y at the same t; h_n holds each direction's last state.
 * With num_layers == 1 a 4th input of bias's rank is taken as the bias (NNabla does the
 * same), so F.lstm(x, h, c, w0, b) works positionally.
 *
 * Forward: one sgemm for the input part of all T steps, one per step for the recurrent
 * part. Backward through time: per step the gate gradients and one sgemm for dh_{t-1} and
 * one for dW_h; after the sweep one sgemm each for dW_x and the layer's input gradient.
 * dropout = p > 0 (training only) drops each output of layers 1 .. L-1 with probability p
 * and scales the kept ones by 1 / (1 - p) before the next layer reads them (as cuDNN and
 * PyTorch do; the last layer's y is never dropped); the masks come from the engine's
 * generator (nn.seed) and are kept for backward. training = false makes backward an error.
 * The CUDA twin (cuda/recurrent.cu) reads this setup's rnn_state and calls the same
 * per-element helpers and mask draw (recurrent_math.h).
 */
#include "../src/function.h"
#include "recurrent_math.h"   /* rnn_state, the weight offsets, the mask draw, the per-element math */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#undef I   /* <complex.h>, pulled in by OpenBLAS's header, defines I */

static void rnn_destroy(nl_func *f) { free(f->state); }

/* ---- setup ---- */

static int check_shape(const nl_var *v, const char *name, int nd, const int64_t *want, const char *layout) {
    bool ok = v->ndim == nd;
    for (int d = 0; ok && d < nd; d++) ok = v->shape[d] == want[d];
    if (ok) return 0;
    char s1[160], s2[160];
    return nl_error("input '%s' has shape %s, expected %s %s", name, nl_shape_str(s1, v->ndim, v->shape),
                    nl_shape_str(s2, nd, want), layout);
}

static int rnn_setup_kind(nl_func *f, int kind) {
    enum { A_NUM_LAYERS = 0 };
    const int a_off = kind == K_RNN ? 1 : 0;   /* rnn has nonlinearity as its 2nd argument */
    const int A_DROPOUT = 1 + a_off, A_BIDIR = 2 + a_off, A_TRAINING = 3 + a_off;
    rnn_state st = {0};
    st.kind = kind;
    st.G = kind == K_RNN ? 1 : kind == K_LSTM ? 4 : 3;
    st.nb = kind == K_RNN ? 1 : 4;
    st.ix = 0; st.ih = 1;
    st.ic = kind == K_LSTM ? 2 : -1;
    st.iw0 = kind == K_LSTM ? 3 : 2;
    st.iw = st.iw0 + 1;
    st.ib = st.iw0 + 2;
    st.relu = kind == K_RNN && nl_arg_int(f, 1) == 1;
    st.training = nl_arg_bool(f, A_TRAINING);
    const nl_var *x = nl_in(f, st.ix), *h = nl_in(f, st.ih);
    char xs[160], hs[160];
    nl_shape_str(xs, x->ndim, x->shape);
    nl_shape_str(hs, h->ndim, h->shape);
    const int64_t L = nl_arg_int(f, A_NUM_LAYERS);
    const double dropout = nl_arg_float(f, A_DROPOUT);
    if (L < 1) return nl_error("num_layers must be 1 or more, got %lld", (long long)L);
    if (!(dropout >= 0 && dropout < 1)) return nl_error("dropout must be in [0, 1), got %g", dropout);
    st.drop = st.training && L > 1 ? (float)dropout : 0.0f;
    const int64_t D = nl_arg_bool(f, A_BIDIR) ? 2 : 1;
    if (x->ndim != 3) return nl_error("x %s must be 3-d (steps, batch, input_size)", xs);
    const int64_t T = x->shape[0], B = x->shape[1], I = x->shape[2];
    if (T < 1 || B < 1 || I < 1) return nl_error("x %s must have 1 or more steps, samples and inputs", xs);
    if (h->ndim != 4) return nl_error("h %s must be 4-d (num_layers, num_directions, batch, hidden_size)", hs);
    const int64_t H = h->shape[3];
    if (H < 1) return nl_error("h %s has hidden size %lld (must be 1 or more)", hs, (long long)H);
    const int64_t hw[4] = {L, D, B, H};
    if (check_shape(h, "h", 4, hw, "(num_layers, num_directions, batch, hidden_size)")) return -1;
    if (st.ic >= 0 && check_shape(nl_in(f, st.ic), "c", 4, hw, "(h's shape)")) return -1;
    /* weight/bias slots: with one layer, a 4th input of bias's rank is the bias */
    const int brank = kind == K_RNN ? 3 : 4;
    if (L == 1 && f->in[st.iw] && !f->in[st.ib] && f->in[st.iw]->ndim == brank) {
        int tmp = st.iw; st.iw = st.ib; st.ib = tmp;
    }
    if (L == 1 && f->in[st.iw])
        return nl_error("input 'weight' (layers 2 and up) cannot be given when num_layers is 1");
    if (L > 1 && !f->in[st.iw])
        return nl_error("input 'weight' (layers 2 and up) is required when num_layers is %lld", (long long)L);
    const int64_t G = st.G;
    if (kind == K_RNN) {
        const int64_t w0[3] = {D, H, I + H};
        if (check_shape(nl_in(f, st.iw0), "weight_l0", 3, w0, "(num_directions, hidden_size, input_size + hidden_size)")) return -1;
    } else {
        const int64_t w0[4] = {D, G, H, I + H};
        if (check_shape(nl_in(f, st.iw0), "weight_l0", 4, w0, kind == K_LSTM ?
                        "(num_directions, 4, hidden_size, input_size + hidden_size)" :
                        "(num_directions, 3, hidden_size, input_size + hidden_size)")) return -1;
    }
    if (L > 1) {
        if (kind == K_RNN) {
            const int64_t w[4] = {L - 1, D, H, D * H + H};
            if (check_shape(f->in[st.iw], "weight", 4, w, "(num_layers - 1, num_directions, hidden_size, num_directions * hidden_size + hidden_size)")) return -1;
        } else {
            const int64_t w[5] = {L - 1, D, G, H, D * H + H};
            if (check_shape(f->in[st.iw], "weight", 5, w, "(num_layers - 1, num_directions, gates, hidden_size, num_directions * hidden_size + hidden_size)")) return -1;
        }
    }
    if (f->in[st.ib]) {
        if (kind == K_RNN) {
            const int64_t b[3] = {L, D, H};
            if (check_shape(f->in[st.ib], "bias", 3, b, "(num_layers, num_directions, hidden_size)")) return -1;
        } else {
            const int64_t b[4] = {L, D, 4, H};
            if (check_shape(f->in[st.ib], "bias", 4, b, "(num_layers, num_directions, 4, hidden_size)")) return -1;
        }
    } else {
        st.ib = -1;
    }
    if (!f->in[st.iw]) st.iw = -1;
    const int64_t big = T * B * (D * H + G * H + I);
    if (G * H > INT_MAX || I + H > INT_MAX || D * H + H > INT_MAX || T * B > INT_MAX || big > INT64_MAX / 16 / L)
        return nl_error("x %s with h %s is too large", xs, hs);
    st.T = T; st.B = B; st.I = I; st.H = H; st.L = L; st.D = D;
    st.n_gates = T * B * G * H;
    st.n_seq = T * B * H;
    const int64_t LD = L * D;
    st.off_hs = LD * st.n_gates;
    st.off_cs = st.off_hs + LD * st.n_seq;
    st.off_hn = st.off_cs + (kind == K_LSTM ? LD * st.n_seq : 0);
    st.off_y = st.off_hn + (kind == K_GRU ? LD * st.n_seq : 0);
    st.off_mask = st.off_y + (L - 1) * T * B * D * H;
    st.saved = st.off_mask + (st.drop > 0 ? (L - 1) * T * B * D * H : 0);

    const int n_out = kind == K_LSTM ? 3 : 2;
    if (nl_set_n_out(f, n_out)) return -1;
    const int64_t ys[3] = {T, B, D * H};
    nl_set_out_shape(f, 0, 3, ys);
    nl_set_out_shape(f, 1, 4, hw);
    if (kind == K_LSTM) nl_set_out_shape(f, 2, 4, hw);
    rnn_state *s = malloc(sizeof *s);
    if (!s) return nl_error("out of memory");
    *s = st;
    f->state = s;
    return 0;
}

static int rnn_setup(nl_func *f) { return rnn_setup_kind(f, K_RNN); }
static int lstm_setup(nl_func *f) { return rnn_setup_kind(f, K_LSTM); }
static int gru_setup(nl_func *f) { return rnn_setup_kind(f, K_GRU); }

/* Weight rows (G*H, In + H) of layer l, direction d; In through *in_size. */
static const float *layer_weight(const rnn_state *s, const float *w0, const float *w, int64_t l,
                                 int64_t d, int64_t *in_size) {
    const int64_t off = nl_rnn_weight_offset(s, l, d, in_size);
    return (l == 0 ? w0 : w) + off;
}

static float *layer_weight_g(const rnn_state *s, float *w0, float *w, int64_t l, int64_t d) {
    int64_t in;
    return (float *)layer_weight(s, w0, w, l, d, &in);
}

/* ---- forward ---- */

static int rnn_forward(nl_func *f) {
    rnn_state *s = f->state;
    const int64_t T = s->T, B = s->B, H = s->H, D = s->D, L = s->L, G = s->G, GH = G * H;
    NL_PTR(const float *, x, nl_in_data(f, s->ix));
    NL_PTR(const float *, h0all, nl_in_data(f, s->ih));
    NL_PTR(const float *, w0, nl_in_data(f, s->iw0));
    const float *c0all = NULL, *wl = NULL, *ball = NULL;
    if (s->ic >= 0 && !(c0all = nl_in_data(f, s->ic))) return -1;
    if (s->iw >= 0 && !(wl = nl_in_data(f, s->iw))) return -1;
    if (s->ib >= 0 && !(ball = nl_in_data(f, s->ib))) return -1;
    NL_PTR(float *, y, nl_out_data(f, 0));
    NL_PTR(float *, hn_out, nl_out_data(f, 1));
    float *cn_out = NULL;
    if (s->kind == K_LSTM && !(cn_out = nl_out_data(f, 2))) return -1;
    NL_PTR(float *, sv, nl_func_scratch(f, 0, s->saved + 1));
    NL_PTR(float *, tmp, nl_func_scratch(f, 1, B * GH + 1));
    s->forward_done = false;

    for (int64_t l = 0; l < L; l++) {
        const float *in = l == 0 ? x : sv + s->off_y + (l - 1) * T * B * D * H;
        float *out = l == L - 1 ? y : sv + s->off_y + l * T * B * D * H;
        for (int64_t d = 0; d < D; d++) {
            const int64_t q = l * D + d;
            int64_t In;
            const float *W = layer_weight(s, w0, wl, l, d, &In);
            const int ld = (int)(In + H);
            const float *bias = ball ? ball + q * s->nb * H : NULL;
            float *gates = sv + q * s->n_gates, *hs = sv + s->off_hs + q * s->n_seq;
            float *cs = s->kind == K_LSTM ? sv + s->off_cs + q * s->n_seq : NULL;
            float *hnb = s->kind == K_GRU ? sv + s->off_hn + q * s->n_seq : NULL;
            const float *h0 = h0all + q * B * H, *c0 = c0all ? c0all + q * B * H : NULL;
            /* input part of all steps: gates (T*B, GH) = in (T*B, In) W_x^T */
            nl_sgemm(false, true, (int)(T * B), (int)GH, (int)In,
                        1.0f, in, (int)In, W, ld, 0.0f, gates, (int)GH);
            if (bias)
                for (int64_t r = 0; r < T * B; r++) {
                    float *g = gates + r * GH;
                    for (int64_t k = 0; k < GH; k++) g[k] += bias[k];   /* gru: b_r, b_z, b_in */
                }
            for (int64_t step = 0; step < T; step++) {
                const int64_t t = d == 0 ? step : T - 1 - step;
                const int64_t tp = d == 0 ? t - 1 : t + 1;
                const float *hp = step == 0 ? h0 : hs + tp * B * H;
                const float *cp = s->kind == K_LSTM ? (step == 0 ? c0 : cs + tp * B * H) : NULL;
                float *g = gates + t * B * GH, *ht = hs + t * B * H;
                if (s->kind == K_GRU) {
                    nl_sgemm(false, true, (int)B, (int)GH, (int)H,
                                1.0f, hp, (int)H, W + In, ld, 0.0f, tmp, (int)GH);
                    const float *bhn = bias ? bias + 3 * H : NULL;
                    float *hnt = hnb + t * B * H;
                    for (int64_t b = 0; b < B; b++)
                        for (int64_t u = 0; u < H; u++)
                            ht[b * H + u] = nl_gru_cell(g + b * GH + u, tmp + b * GH + u, H, bhn ? bhn[u] : 0.0f,
                                                        hp[b * H + u], &hnt[b * H + u]);
                    continue;
                }
                nl_sgemm(false, true, (int)B, (int)GH, (int)H,
                            1.0f, hp, (int)H, W + In, ld, 1.0f, g, (int)GH);
                if (s->kind == K_RNN) {
                    for (int64_t k = 0; k < B * H; k++) {
                        const float v = nl_rnn_act(g[k], s->relu);
                        g[k] = v;
                        ht[k] = v;
                    }
                } else {
                    float *ct = cs + t * B * H;
                    for (int64_t b = 0; b < B; b++)
                        for (int64_t u = 0; u < H; u++)
                            ht[b * H + u] = nl_lstm_cell(g + b * GH + u, H, cp[b * H + u], &ct[b * H + u]);
                }
            }
            /* this direction's half of the layer output, and the last states */
            for (int64_t t = 0; t < T; t++)
                for (int64_t b = 0; b < B; b++)
                    memcpy(out + (t * B + b) * D * H + d * H, hs + (t * B + b) * H, (size_t)H * sizeof(float));
            const int64_t tl = d == 0 ? T - 1 : 0;
            memcpy(hn_out + q * B * H, hs + tl * B * H, (size_t)(B * H) * sizeof(float));
            if (cn_out) memcpy(cn_out + q * B * H, cs + tl * B * H, (size_t)(B * H) * sizeof(float));
        }
        /* dropout before the next layer: out (T*B*D*H) *= mask, mask = 0 or 1/(1-p) */
        if (s->drop > 0 && l < L - 1) {
            const int64_t n = T * B * D * H;
            const float keep = 1.0f / (1.0f - s->drop);
            float *mask = sv + s->off_mask + l * n;
            for (int64_t k = 0; k < n; k++) {
                mask[k] = nl_rnn_mask_draw(s->drop, keep);
                out[k] *= mask[k];
            }
        }
    }
    s->forward_done = true;
    return 0;
}

/* ---- backward through time ---- */

static int rnn_backward(nl_func *f, const bool *prop, const bool *accum) {
    rnn_state *s = f->state;
    bool any = false;
    for (int i = 0; i < f->n_in; i++) any |= f->in[i] && prop[i];
    if (!any) return 0;
    if (!s->training) return nl_error("built with training = false: backward is not available");
    if (!s->forward_done) return nl_error("forward must run before backward");
    const int64_t T = s->T, B = s->B, H = s->H, D = s->D, L = s->L, G = s->G, GH = G * H;
    const int64_t TB = T * B;
    const bool px = prop[s->ix], ph = prop[s->ih], pc = s->ic >= 0 && prop[s->ic];
    const bool pw0 = prop[s->iw0], pw = s->iw >= 0 && prop[s->iw], pb = s->ib >= 0 && prop[s->ib];
    NL_PTR(const float *, x, nl_in_data(f, s->ix));
    NL_PTR(const float *, h0all, nl_in_data(f, s->ih));
    NL_PTR(const float *, w0, nl_in_data(f, s->iw0));
    const float *c0all = NULL, *wl = NULL;
    if (s->ic >= 0 && !(c0all = nl_in_data(f, s->ic))) return -1;
    if (s->iw >= 0 && !(wl = nl_in_data(f, s->iw))) return -1;
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    NL_PTR(const float *, dhn, nl_out_grad(f, 1));
    const float *dcn = NULL;
    if (s->kind == K_LSTM && !(dcn = nl_out_grad(f, 2))) return -1;
    const float *sv = f->scratch[0];
    if (!sv) return nl_error("forward must run before backward");
    /* gradients wanted: zeroed unless accumulating, then added into */
    float *dx = NULL, *dh0 = NULL, *dc0 = NULL, *dw0 = NULL, *dw = NULL, *db = NULL;
    if (px && !(dx = nl_in_grad(f, s->ix, accum[s->ix]))) return -1;
    if (ph && !(dh0 = nl_in_grad(f, s->ih, accum[s->ih]))) return -1;
    if (pc && !(dc0 = nl_in_grad(f, s->ic, accum[s->ic]))) return -1;
    if (pw0 && !(dw0 = nl_in_grad(f, s->iw0, accum[s->iw0]))) return -1;
    if (pw && !(dw = nl_in_grad(f, s->iw, accum[s->iw]))) return -1;
    if (pb && !(db = nl_in_grad(f, s->ib, accum[s->ib]))) return -1;
    if (pw0 && !accum[s->iw0]) memset(dw0, 0, (size_t)nl_in(f, s->iw0)->size * sizeof(float));
    if (pw && !accum[s->iw]) memset(dw, 0, (size_t)nl_in(f, s->iw)->size * sizeof(float));
    if (pb && !accum[s->ib]) memset(db, 0, (size_t)nl_in(f, s->ib)->size * sizeof(float));
    /* work: two layer-gradient buffers (T*B*D*H), gate gradients (T*B*GH), per-step
     * recurrent gate gradients (B*GH), dh, dh_next, dc_next (B*H each) */
    const int64_t seqbuf = L > 1 ? TB * D * H : 0;
    NL_PTR(float *, wk, nl_func_scratch(f, 2, 2 * seqbuf + TB * GH + B * GH + 3 * B * H + 1));
    float *bufs[2] = {wk, wk + seqbuf};
    float *dG = wk + 2 * seqbuf, *dGh = dG + TB * GH, *dh = dGh + B * GH, *dhn_ = dh + B * H,
          *dcn_ = dhn_ + B * H;
    float *dz_ = dcn_;   /* gru (no cell): dh * z, the part of dh_{t-1} that bypasses W_h */

    for (int64_t l = L - 1; l >= 0; l--) {
        if (s->drop > 0 && l < L - 1) {   /* through the dropout after layer l */
            const float *mask = sv + s->off_mask + l * TB * D * H;
            float *g = bufs[l & 1];
            for (int64_t k = 0; k < TB * D * H; k++) g[k] *= mask[k];
        }
        const float *dYl = l == L - 1 ? dy : bufs[l & 1];
        const float *in = l == 0 ? x : sv + s->off_y + (l - 1) * TB * D * H;
        float *dX = l == 0 ? dx : bufs[(l - 1) & 1];
        bool dX_accum = l == 0 ? (px && accum[s->ix]) : false;
        const bool want_dX = l > 0 || px;
        for (int64_t d = 0; d < D; d++) {
            const int64_t q = l * D + d;
            int64_t In;
            const float *W = layer_weight(s, w0, wl, l, d, &In);
            const int ld = (int)(In + H);
            float *dW = l == 0 ? (dw0 ? layer_weight_g(s, dw0, NULL, 0, d) : NULL)
                               : (dw ? layer_weight_g(s, NULL, dw, l, d) : NULL);
            float *dB = db ? db + q * s->nb * H : NULL;
            const float *gates = sv + q * s->n_gates, *hs = sv + s->off_hs + q * s->n_seq;
            const float *cs = s->kind == K_LSTM ? sv + s->off_cs + q * s->n_seq : NULL;
            const float *hnb = s->kind == K_GRU ? sv + s->off_hn + q * s->n_seq : NULL;
            const float *h0 = h0all + q * B * H, *c0 = c0all ? c0all + q * B * H : NULL;
            memcpy(dhn_, dhn + q * B * H, (size_t)(B * H) * sizeof(float));
            if (dcn) memcpy(dcn_, dcn + q * B * H, (size_t)(B * H) * sizeof(float));
            for (int64_t step = T - 1; step >= 0; step--) {
                const int64_t t = d == 0 ? step : T - 1 - step;
                const int64_t tp = d == 0 ? t - 1 : t + 1;
                const float *hp = step == 0 ? h0 : hs + tp * B * H;
                const float *g = gates + t * B * GH, *ht = hs + t * B * H;
                float *dg = dG + t * B * GH;
                for (int64_t b = 0; b < B; b++)
                    for (int64_t u = 0; u < H; u++)
                        dh[b * H + u] = dYl[(t * B + b) * D * H + d * H + u] + dhn_[b * H + u];
                const float *dgh = dg;   /* recurrent-side gate gradients */
                if (s->kind == K_RNN) {
                    for (int64_t k = 0; k < B * H; k++) dg[k] = nl_rnn_dact(ht[k], dh[k], s->relu);
                } else if (s->kind == K_LSTM) {
                    const float *ct = cs + t * B * H, *cp = step == 0 ? c0 : cs + tp * B * H;
                    for (int64_t b = 0; b < B; b++)
                        for (int64_t u = 0; u < H; u++) {
                            const int64_t k = b * H + u;
                            dcn_[k] = nl_lstm_bwd(g + b * GH + u, H, ct[k], cp[k], dh[k], dcn_[k], dg + b * GH + u);
                        }
                } else {
                    const float *hnt = hnb + t * B * H;
                    for (int64_t b = 0; b < B; b++)
                        for (int64_t u = 0; u < H; u++) {
                            const int64_t k = b * H + u;
                            dz_[k] = nl_gru_bwd(g + b * GH + u, H, hp[k], hnt[k], dh[k], dg + b * GH + u, dGh + b * GH + u);
                        }
                    dgh = dGh;
                }
                /* dh_{t-1} = dgh W_h (+ dh * z for gru); dW_h += dgh^T h_{t-1}; db */
                nl_sgemm(false, false, (int)B, (int)H, (int)GH,
                            1.0f, dgh, (int)GH, W + In, ld, 0.0f, dhn_, (int)H);
                if (s->kind == K_GRU)
                    for (int64_t k = 0; k < B * H; k++) dhn_[k] += dz_[k];
                if (dW)
                    nl_sgemm(true, false, (int)GH, (int)H, (int)B,
                                1.0f, dgh, (int)GH, hp, (int)H, 1.0f, dW + In, ld);
                if (dB) {
                    for (int64_t b = 0; b < B; b++) {
                        for (int64_t k = 0; k < GH; k++) dB[k] += dg[b * GH + k];
                        if (s->kind == K_GRU)
                            for (int64_t u = 0; u < H; u++) dB[3 * H + u] += dgh[b * GH + 2 * H + u];
                    }
                }
            }
            /* initial states */
            if (dh0) {
                float *t0 = dh0 + q * B * H;
                for (int64_t k = 0; k < B * H; k++) t0[k] = accum[s->ih] ? t0[k] + dhn_[k] : dhn_[k];
            }
            if (dc0) {
                float *t0 = dc0 + q * B * H;
                for (int64_t k = 0; k < B * H; k++) t0[k] = accum[s->ic] ? t0[k] + dcn_[k] : dcn_[k];
            }
            /* dW_x += dG^T in; dX (+)= dG W_x */
            if (dW)
                nl_sgemm(true, false, (int)GH, (int)In, (int)TB,
                            1.0f, dG, (int)GH, in, (int)In, 1.0f, dW, ld);
            if (want_dX) {
                nl_sgemm(false, false, (int)TB, (int)In, (int)GH,
                            1.0f, dG, (int)GH, W, ld, dX_accum ? 1.0f : 0.0f, dX, (int)In);
                dX_accum = true;
            }
        }
    }
    return 0;
}

static const nl_argdef rnn_args[] = {
    {"num_layers", NL_ARG_INT, "1", NULL},
    {"nonlinearity", NL_ARG_CHOICE, "'tanh'", "tanh|relu"},
    {"dropout", NL_ARG_FLOAT, "0.0", NULL},
    {"bidirectional", NL_ARG_BOOL, "false", NULL},
    {"training", NL_ARG_BOOL, "true", NULL},
};

static const nl_argdef gated_args[] = {
    {"num_layers", NL_ARG_INT, "1", NULL},
    {"dropout", NL_ARG_FLOAT, "0.0", NULL},
    {"bidirectional", NL_ARG_BOOL, "false", NULL},
    {"training", NL_ARG_BOOL, "true", NULL},
};

const nl_fdef nl_fdef_rnn = {
    .name = "rnn",
    .doc = "Elman RNN over x (T, B, I) from h (L, D, B, H): h = act(W [x, h] + b); weight_l0 "
           "(D, H, I+H), weight (L-1, D, H, D*H+H), bias (L, D, H) -> y (T, B, D*H), h_n",
    .in_names = "x,h,weight_l0,weight,bias",
    .n_in = 3,
    .n_opt_in = 2,
    .n_out = -1,
    .n_args = 5,
    .args = rnn_args,
    .setup = rnn_setup,
    .forward = rnn_forward,
    .backward = rnn_backward,
    .destroy = rnn_destroy,
    .grad_in_data = 0x1f,
    .grad_out_data = 0,
};

const nl_fdef nl_fdef_lstm = {
    .name = "lstm",
    .doc = "LSTM over x (T, B, I) from h, c (L, D, B, H); gates i, f, g, o; weight_l0 "
           "(D, 4, H, I+H), weight (L-1, D, 4, H, D*H+H), bias (L, D, 4, H) -> y (T, B, D*H), h_n, c_n",
    .in_names = "x,h,c,weight_l0,weight,bias",
    .n_in = 4,
    .n_opt_in = 2,
    .n_out = -1,
    .n_args = 4,
    .args = gated_args,
    .setup = lstm_setup,
    .forward = rnn_forward,
    .backward = rnn_backward,
    .destroy = rnn_destroy,
    .grad_in_data = 0x3f,
    .grad_out_data = 0,
};

const nl_fdef nl_fdef_gru = {
    .name = "gru",
    .doc = "GRU over x (T, B, I) from h (L, D, B, H); gates r, z, n; weight_l0 (D, 3, H, I+H), "
           "weight (L-1, D, 3, H, D*H+H), bias (L, D, 4, H): b_r, b_z, b_in, b_hn -> y (T, B, D*H), h_n",
    .in_names = "x,h,weight_l0,weight,bias",
    .n_in = 3,
    .n_opt_in = 2,
    .n_out = -1,
    .n_args = 4,
    .args = gated_args,
    .setup = gru_setup,
    .forward = rnn_forward,
    .backward = rnn_backward,
    .destroy = rnn_destroy,
    .grad_in_data = 0x1f,
    .grad_out_data = 0,
};
