/*
 * recurrent_math.h - what recurrent.c's rnn, lstm and gru share with their CUDA twins
 * (cuda/recurrent.cu, which reads f->state): the setup's state (rnn_state: sizes, input
 * slots, the layout of what forward saves for backward), the offset of a layer's weight
 * rows, the draw of a dropout mask value from the engine's generator, and the per-element
 * math of the gates and cell updates, forward and backward.
 * The element helpers are host and device functions under nvcc (NL_HD), plain C elsewhere.
 * On the device the products and sums go through the round-to-nearest intrinsics
 * (NL_R_*), so no product is fused into a sum that the CPU (built without FMA) rounds
 * apart; expf and tanhf are each side's own (within a few ulps of each other).
 * Gate layouts: each helper gets a pointer to unit u's first gate of one sample and the
 * gate stride H (gates i, f, g, o for lstm; r, z, n for gru).
 */
#ifndef NNLUA_RECURRENT_MATH_H
#define NNLUA_RECURRENT_MATH_H
#include "../src/function.h"
#include "elementwise_math.h"   /* NL_HD */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __CUDA_ARCH__
#define NL_R_ADD(a, b) __fadd_rn((a), (b))
#define NL_R_SUB(a, b) __fsub_rn((a), (b))
#define NL_R_MUL(a, b) __fmul_rn((a), (b))
#else
#define NL_R_ADD(a, b) ((a) + (b))
#define NL_R_SUB(a, b) ((a) - (b))
#define NL_R_MUL(a, b) ((a) * (b))
#endif

enum { K_RNN, K_LSTM, K_GRU };

/* The setup's state (f->state). Scratch 0 (the CPU) or the device's saved buffer holds,
 * per (layer l, direction d) q = l*D + d: the activated gates (T, B, G*H) at q*n_gates;
 * h of every step (T, B, H) at off_hs + q*n_seq; lstm: c (T, B, H) at off_cs + ...;
 * gru: W_hn h_{t-1} + b_hn (T, B, H) at off_hn + ...; the outputs of layers 1 .. L-1
 * (T, B, D*H each, after dropout) at off_y; the dropout masks (0 or 1/(1-p), one per
 * such output) at off_mask. saved floats in all. */
typedef struct rnn_state {
    int kind, G, nb;                  /* gates, bias blocks per (layer, direction) */
    int64_t T, B, I, H, L, D;
    int ix, ih, ic, iw0, iw, ib;      /* input slots (-1: absent) */
    bool relu, training;
    float drop;                       /* dropout between layers (training only), 0: none */
    int64_t n_gates, n_seq;           /* T*B*G*H and T*B*H: per (layer, direction) */
    int64_t off_hs, off_cs, off_hn, off_y, off_mask, saved;   /* offsets in scratch 0 */
    bool forward_done;
} rnn_state;

/* Offset of the weight rows (G*H, In + H) of layer l, direction d in weight_l0 (l = 0)
 * or weight (l > 0); In through *in_size. */
static inline int64_t nl_rnn_weight_offset(const rnn_state *s, int64_t l, int64_t d, int64_t *in_size) {
    const int64_t gh = s->G * s->H;
    if (l == 0) { *in_size = s->I; return d * gh * (s->I + s->H); }
    *in_size = s->D * s->H;
    return ((l - 1) * s->D + d) * gh * (s->D * s->H + s->H);
}

/* The next dropout mask value from the engine's generator (sequential): 0 with
 * probability p, else keep = 1/(1-p). Both backends draw the masks through this, in
 * the same order (layer by layer, element by element), so they agree for one seed. */
static inline float nl_rnn_mask_draw(float p, float keep) {
    return nl_rngs_uniform01(NULL) >= p ? keep : 0.0f;
}

NL_HD float nl_rnn_sigm(float v) { return 1.0f / NL_R_ADD(1.0f, expf(-v)); }

/* ---- forward ---- */

/* rnn: h = tanh(a) or relu(a) */
NL_HD float nl_rnn_act(float a, bool relu) { return relu ? (a > 0.0f ? a : 0.0f) : tanhf(a); }

/* lstm: g[0], g[H], g[2H], g[3H] hold the pre-activations of i, f, g, o and become the
 * gates; cp the previous cell. *c = f*cp + i*g; returns h = o*tanh(c). */
NL_HD float nl_lstm_cell(float *g, int64_t H, float cp, float *c) {
    const float i = nl_rnn_sigm(g[0]), fg = nl_rnn_sigm(g[H]);
    const float gg = tanhf(g[2 * H]), o = nl_rnn_sigm(g[3 * H]);
    g[0] = i; g[H] = fg; g[2 * H] = gg; g[3 * H] = o;
    const float cv = NL_R_ADD(NL_R_MUL(fg, cp), NL_R_MUL(i, gg));
    *c = cv;
    return NL_R_MUL(o, tanhf(cv));
}

/* gru: g[0], g[H], g[2H] hold the input parts (with b_r, b_z, b_in) of r, z, n and become
 * the gates; t[0], t[H], t[2H] the recurrent parts W_h h_{t-1}; bhn the unit's b_hn (0
 * without bias); hp the previous h. *hv = W_hn h + b_hn (kept for backward); returns
 * h = (1-z)*n + z*hp. */
NL_HD float nl_gru_cell(float *g, const float *t, int64_t H, float bhn, float hp, float *hv) {
    const float r = nl_rnn_sigm(NL_R_ADD(g[0], t[0]));
    const float z = nl_rnn_sigm(NL_R_ADD(g[H], t[H]));
    const float v = NL_R_ADD(t[2 * H], bhn);
    const float n = tanhf(NL_R_ADD(g[2 * H], NL_R_MUL(r, v)));
    g[0] = r; g[H] = z; g[2 * H] = n;
    *hv = v;
    return NL_R_ADD(NL_R_MUL(NL_R_SUB(1.0f, z), n), NL_R_MUL(z, hp));
}

/* ---- backward (dh: the gradient reaching this step's h) ---- */

/* rnn: the pre-activation's gradient from h */
NL_HD float nl_rnn_dact(float h, float dh, bool relu) {
    return relu ? (h > 0.0f ? dh : 0.0f) : NL_R_MUL(dh, NL_R_SUB(1.0f, NL_R_MUL(h, h)));
}

/* lstm: g[0..3H] the gates i, f, g, o; ct, cp this and the previous cell; dcn the
 * gradient reaching ct from the next step. Writes the pre-activations' gradients to
 * dg[0], dg[H], dg[2H], dg[3H]; returns the gradient reaching cp (dc * f). */
NL_HD float nl_lstm_bwd(const float *g, int64_t H, float ct, float cp, float dh, float dcn, float *dg) {
    const float i = g[0], fg = g[H], gg = g[2 * H], o = g[3 * H];
    const float tc = tanhf(ct);
    const float dc = NL_R_ADD(dcn, NL_R_MUL(NL_R_MUL(dh, o), NL_R_SUB(1.0f, NL_R_MUL(tc, tc))));
    dg[0] = NL_R_MUL(NL_R_MUL(NL_R_MUL(dc, gg), i), NL_R_SUB(1.0f, i));
    dg[H] = NL_R_MUL(NL_R_MUL(NL_R_MUL(dc, cp), fg), NL_R_SUB(1.0f, fg));
    dg[2 * H] = NL_R_MUL(NL_R_MUL(dc, i), NL_R_SUB(1.0f, NL_R_MUL(gg, gg)));
    dg[3 * H] = NL_R_MUL(NL_R_MUL(NL_R_MUL(dh, tc), o), NL_R_SUB(1.0f, o));
    return NL_R_MUL(dc, fg);
}

/* gru: g[0..2H] the gates r, z, n; hp the previous h; hv = W_hn h_{t-1} + b_hn. Writes
 * the input-side pre-activation gradients to dg[0], dg[H], dg[2H] (r, z, n) and the
 * recurrent-side ones to dgh[0], dgh[H], dgh[2H] (r, z, n*r); returns the part of the
 * gradient reaching hp that bypasses W_h (dh * z). */
NL_HD float nl_gru_bwd(const float *g, int64_t H, float hp, float hv, float dh, float *dg, float *dgh) {
    const float r = g[0], z = g[H], n = g[2 * H];
    const float dn = NL_R_MUL(NL_R_MUL(dh, NL_R_SUB(1.0f, z)), NL_R_SUB(1.0f, NL_R_MUL(n, n)));
    const float dz = NL_R_MUL(NL_R_MUL(NL_R_MUL(dh, NL_R_SUB(hp, n)), z), NL_R_SUB(1.0f, z));
    const float dr = NL_R_MUL(NL_R_MUL(NL_R_MUL(dn, hv), r), NL_R_SUB(1.0f, r));
    dg[0] = dgh[0] = dr;
    dg[H] = dgh[H] = dz;
    dg[2 * H] = dn;
    dgh[2 * H] = NL_R_MUL(dn, r);
    return NL_R_MUL(dh, z);
}

#endif
