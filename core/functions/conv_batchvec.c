/*
 * conv_batchvec.c - direct 2-d convolution with the batch as the vector axis (see
 * conv_batchvec.h). "Batch-last" arrays are (rows, NP): the NP samples of one (channel, y, x)
 * are contiguous, NP a multiple of 8. Each output value of a block of 32 (or 8) samples is
 * summed over the kernel taps in vector registers (GCC vector extensions: AVX2 in the
 * x86-64-v3 clone, SSE pairs elsewhere), and written once:
 *   forward  yt[o][oy][ox][:]  = sum over (c, ki, kj) of w[o][c][ki][kj] * xt[c][iy][ix][:]
 *   dx       dxt[c][iy][ix][:] = sum over (o, ki, kj) of w[o][c][ki][kj] * dyt[o][oy][ox][:]
 *   dw       dw[o][c][ki][kj]  = sum over (oy, ox) and the samples of dyt[o][oy][ox] * xt[c][iy][ix]
 * with iy = oy*stride - pad + ki*dil (and x alike); taps in the padding are skipped.
 */
#include "conv_batchvec.h"
#include "../src/function.h"
#include <stdlib.h>
#include <string.h>

/* The vector helpers below are always inlined into the SIMD clones; their by-value vectors
 * never cross a call, so the ABI note GCC gives for the default clone does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"

typedef float v8f __attribute__((vector_size(32)));

static inline __attribute__((always_inline)) v8f ld(const float *p) { v8f v; memcpy(&v, p, sizeof v); return v; }
static inline __attribute__((always_inline)) void st(float *p, v8f v) { memcpy(p, &v, sizeof v); }

typedef int v8i __attribute__((vector_size(32)));

/* The 8x8 block m (8 vectors, row k = m[k]) transposed in place: m[k][u] <-> m[u][k]. */
static inline __attribute__((always_inline)) void transpose8(v8f m[8]) {
    const v8i lo = {0, 8, 1, 9, 4, 12, 5, 13}, hi = {2, 10, 3, 11, 6, 14, 7, 15};
    const v8i lo2 = {0, 1, 8, 9, 4, 5, 12, 13}, hi2 = {2, 3, 10, 11, 6, 7, 14, 15};
    const v8i lo4 = {0, 1, 2, 3, 8, 9, 10, 11}, hi4 = {4, 5, 6, 7, 12, 13, 14, 15};
    v8f t[8], u[8];
    for (int k = 0; k < 8; k += 2) {
        t[k] = __builtin_shuffle(m[k], m[k + 1], lo);
        t[k + 1] = __builtin_shuffle(m[k], m[k + 1], hi);
    }
    for (int k = 0; k < 8; k += 4)          /* u[k + j]: columns j and j + 4 of rows k .. k+3 */
        for (int h = 0; h < 2; h++) {
            u[k + 2 * h] = __builtin_shuffle(t[k + h], t[k + h + 2], lo2);
            u[k + 2 * h + 1] = __builtin_shuffle(t[k + h], t[k + h + 2], hi2);
        }
    for (int h = 0; h < 4; h++) {
        m[h] = __builtin_shuffle(u[h], u[h + 4], lo4);
        m[h + 4] = __builtin_shuffle(u[h], u[h + 4], hi4);
    }
}

/* a (n, rows) -> at (rows, np): at[r*np + j] = a[j*rows + r]; zeros for j >= n.
 * 8x8 blocks through registers, the edges element by element. */
static inline __attribute__((always_inline)) void to_batch_last(const float *restrict a, int64_t n, int64_t rows, int64_t np, float *restrict at) {
    const int64_t r8 = rows / 8 * 8, n8 = n / 8 * 8;
    for (int64_t r0 = 0; r0 < r8; r0 += 8) {
        for (int64_t j0 = 0; j0 < n8; j0 += 8) {
            v8f m[8];
            for (int k = 0; k < 8; k++) m[k] = ld(a + (j0 + k) * rows + r0);
            transpose8(m);
            for (int k = 0; k < 8; k++) st(at + (r0 + k) * np + j0, m[k]);
        }
        for (int64_t r = r0; r < r0 + 8; r++)
            for (int64_t j = n8; j < np; j++) at[r * np + j] = j < n ? a[j * rows + r] : 0.0f;
    }
    for (int64_t r = r8; r < rows; r++)
        for (int64_t j = 0; j < np; j++) at[r * np + j] = j < n ? a[j * rows + r] : 0.0f;
}

/* at (groups * per, np) -> a (n, groups * per) (+ bias[group] when bias), overwriting or
 * adding; 8x8 blocks through registers, the edges element by element. */
static inline __attribute__((always_inline)) void from_batch_last(const float *restrict at, int64_t n, int64_t groups, int64_t per, int64_t np,
                            float *restrict a, bool accum, const float *bias) {
    const int64_t rows = groups * per, r8 = rows / 8 * 8, n8 = n / 8 * 8;
    for (int64_t r0 = 0; r0 < r8; r0 += 8) {
        v8f bv = {0};
        if (bias)
            for (int k = 0; k < 8; k++) bv[k] = bias[(r0 + k) / per];
        for (int64_t j0 = 0; j0 < n8; j0 += 8) {
            v8f m[8];
            for (int k = 0; k < 8; k++) m[k] = ld(at + (r0 + k) * np + j0);
            transpose8(m);
            for (int k = 0; k < 8; k++) {
                float *d = a + (j0 + k) * rows + r0;
                st(d, accum ? ld(d) + (m[k] + bv) : m[k] + bv);
            }
        }
        for (int64_t j = n8; j < n; j++)
            for (int k = 0; k < 8; k++) {
                float *d = a + j * rows + r0 + k;
                const float v = at[(r0 + k) * np + j] + bv[k];
                *d = accum ? *d + v : v;
            }
    }
    for (int64_t r = r8; r < rows; r++) {
        const float bq = bias ? bias[r / per] : 0.0f;
        for (int64_t j = 0; j < n; j++) {
            float *d = a + j * rows + r;
            const float v = at[r * np + j] + bq;
            *d = accum ? *d + v : v;
        }
    }
}

int64_t nl_cbv_work(const nl_cbv_geom *g) {
    const int64_t xs = g->c * g->in[0] * g->in[1] * g->np, ys = g->oc * g->out[0] * g->out[1] * g->np;
    return 2 * xs + ys;   /* xt, dxt, yt / dyt */
}

void nl_cbv_free(nl_cbv_geom *g) {
    free(g->out_start); free(g->out_in); free(g->out_tap);
    free(g->in_start); free(g->in_out); free(g->in_tap);
    free(g->tap_start); free(g->tap_out); free(g->tap_in);
    g->out_start = g->out_in = g->out_tap = g->in_start = g->in_out = g->in_tap = NULL;
    g->tap_start = g->tap_out = g->tap_in = NULL;
}

/* The input position output position p reads through tap (ki, kj), or -1 in the padding. */
static int64_t tap_input(const nl_cbv_geom *g, int64_t p, int64_t ki, int64_t kj) {
    const int64_t oy = p / g->out[1], ox = p % g->out[1];
    const int64_t iy = oy * g->stride[0] - g->pad[0] + ki * g->dil[0];
    const int64_t ix = ox * g->stride[1] - g->pad[1] + kj * g->dil[1];
    if (iy < 0 || iy >= g->in[0] || ix < 0 || ix >= g->in[1]) return -1;
    return iy * g->in[1] + ix;
}

/* Groups the (key, a, b) triples by key (0 .. nkeys-1) into start / a / b, in their order. */
static void group_by(int64_t n, const int32_t *key, const int32_t *a, const int32_t *b, int64_t nkeys,
                     int32_t *start, int32_t *ga, int32_t *gb) {
    memset(start, 0, (size_t)(nkeys + 1) * sizeof(int32_t));
    for (int64_t e = 0; e < n; e++) start[key[e] + 1]++;
    for (int64_t k = 0; k < nkeys; k++) start[k + 1] += start[k];
    int32_t *fill = malloc((size_t)(nkeys + 1) * sizeof(int32_t));
    memcpy(fill, start, (size_t)(nkeys + 1) * sizeof(int32_t));
    for (int64_t e = 0; e < n; e++) {
        const int32_t at = fill[key[e]]++;
        ga[at] = a[e];
        gb[at] = b[e];
    }
    free(fill);
}

int nl_cbv_tables(nl_cbv_geom *g) {
    const int64_t OP = g->out[0] * g->out[1], IS = g->in[0] * g->in[1], KK = g->k[0] * g->k[1];
    const int64_t most = OP * KK;
    int32_t *ep = malloc((size_t)(most + 1) * sizeof(int32_t)), *ei = malloc((size_t)(most + 1) * sizeof(int32_t)),
            *ek = malloc((size_t)(most + 1) * sizeof(int32_t));
    g->out_start = malloc((size_t)(OP + 1) * sizeof(int32_t));
    g->in_start = malloc((size_t)(IS + 1) * sizeof(int32_t));
    g->tap_start = malloc((size_t)(KK + 1) * sizeof(int32_t));
    g->out_in = malloc((size_t)(most + 1) * sizeof(int32_t)); g->out_tap = malloc((size_t)(most + 1) * sizeof(int32_t));
    g->in_out = malloc((size_t)(most + 1) * sizeof(int32_t)); g->in_tap = malloc((size_t)(most + 1) * sizeof(int32_t));
    g->tap_out = malloc((size_t)(most + 1) * sizeof(int32_t)); g->tap_in = malloc((size_t)(most + 1) * sizeof(int32_t));
    if (!ep || !ei || !ek || !g->out_start || !g->in_start || !g->tap_start || !g->out_in || !g->out_tap ||
        !g->in_out || !g->in_tap || !g->tap_out || !g->tap_in) {
        free(ep); free(ei); free(ek);
        nl_cbv_free(g);
        return nl_error("out of memory");
    }
    /* every (output position, tap, input position) that reads inside, output-major */
    int64_t n = 0;
    for (int64_t p = 0; p < OP; p++)
        for (int64_t ki = 0; ki < g->k[0]; ki++)
            for (int64_t kj = 0; kj < g->k[1]; kj++) {
                const int64_t q = tap_input(g, p, ki, kj);
                if (q < 0) continue;
                ep[n] = (int32_t)p; ek[n] = (int32_t)(ki * g->k[1] + kj); ei[n] = (int32_t)q;
                n++;
            }
    group_by(n, ep, ei, ek, OP, g->out_start, g->out_in, g->out_tap);
    group_by(n, ei, ep, ek, IS, g->in_start, g->in_out, g->in_tap);
    group_by(n, ek, ep, ei, KK, g->tap_start, g->tap_out, g->tap_in);
    free(ep); free(ei); free(ek);
    return 0;
}

/* dst (np) = sum over planes j < nplanes and taps t in [t0, t1) of
 *   wts[j * wstride + tap[t]] * src[j * plane + pos[t] * np + (0 .. np)]
 * in blocks of 32 samples (4 vectors in registers) and 8-sample tails: a forward output
 * (planes: input channels) or an input gradient (planes: output channels). */
static inline __attribute__((always_inline)) void tap_sums(float *dst, const float *src, int64_t plane, int64_t nplanes,
                                                           const float *wts, int64_t wstride, const int32_t *pos,
                                                           const int32_t *tap, int32_t t0, int32_t t1, int64_t np) {
    int64_t n0 = 0;
    for (; n0 + 32 <= np; n0 += 32) {
        v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        for (int64_t j = 0; j < nplanes; j++) {
            const float *sj = src + j * plane + n0, *wj = wts + j * wstride;
            for (int32_t t = t0; t < t1; t++) {
                const float wv = wj[tap[t]];
                const float *v = sj + (int64_t)pos[t] * np;
                a0 += wv * ld(v); a1 += wv * ld(v + 8); a2 += wv * ld(v + 16); a3 += wv * ld(v + 24);
            }
        }
        st(dst + n0, a0); st(dst + n0 + 8, a1); st(dst + n0 + 16, a2); st(dst + n0 + 24, a3);
    }
    for (; n0 < np; n0 += 8) {
        v8f a = {0};
        for (int64_t j = 0; j < nplanes; j++)
            for (int32_t t = t0; t < t1; t++)
                a += wts[j * wstride + tap[t]] * ld(src + j * plane + (int64_t)pos[t] * np + n0);
        st(dst + n0, a);
    }
}

/* x (N, C, H, W) -> y (N, OC, OH, OW):
 * yt[o][p][:] = sum over c and the taps t of p of w[o][c][tap t] * xt[c][input of t][:] */
NL_SIMD_CLONES void nl_cbv_forward(const nl_cbv_geom *g, const float *x, const float *w, const float *b,
                                   float *y, float *work) {
    const int64_t np = g->np, IS = g->in[0] * g->in[1], OP = g->out[0] * g->out[1];
    const int64_t KK = g->k[0] * g->k[1], C = g->c;
    const int32_t *start = g->out_start, *tin = g->out_in, *ttap = g->out_tap;
    float *xt = work, *yt = work + 2 * C * IS * np;
    to_batch_last(x, g->n, C * IS, np, xt);
    for (int64_t o = 0; o < g->oc; o++) {
        const float *wo = w + o * C * KK;
        for (int64_t p = 0; p < OP; p++)
            tap_sums(yt + (o * OP + p) * np, xt, IS * np, C, wo, KK, tin, ttap, start[p], start[p + 1], np);
    }
    from_batch_last(yt, g->n, g->oc, OP, np, y, false, b);
}

/* dy (N, OC, OH, OW) -> dx (N, C, H, W) and dw (OC, C, KH, KW):
 *   dxt[c][q][:]      = sum over o and the taps t reading q of w[o][c][tap t] * dyt[o][output of t][:]
 *   dw[o][c][tap k]   = sum over the (p, q) pairs of tap k and the samples of dyt[o][p] * xt[c][q] */
NL_SIMD_CLONES void nl_cbv_backward(const nl_cbv_geom *g, const float *x, const float *w, const float *dy,
                                    float *dx, float *dw, bool accum_x, bool accum_w, float *work) {
    const int64_t np = g->np, IS = g->in[0] * g->in[1], OP = g->out[0] * g->out[1];
    const int64_t KK = g->k[0] * g->k[1], C = g->c, xs = C * IS;
    float *xt = work, *dxt = work + xs * np, *dyt = work + 2 * xs * np;
    to_batch_last(dy, g->n, g->oc * OP, np, dyt);
    if (dw) {
        to_batch_last(x, g->n, xs, np, xt);
        for (int64_t o = 0; o < g->oc; o++)
            for (int64_t c = 0; c < C; c++)
                for (int64_t k = 0; k < KK; k++) {
                    v8f p0 = {0}, p1 = {0}, p2 = {0}, p3 = {0};
                    for (int32_t t = g->tap_start[k]; t < g->tap_start[k + 1]; t++) {
                        const float *a = dyt + (o * OP + g->tap_out[t]) * np;
                        const float *v = xt + (c * IS + g->tap_in[t]) * np;
                        int64_t n0 = 0;
                        for (; n0 + 32 <= np; n0 += 32) {
                            p0 += ld(a + n0) * ld(v + n0);
                            p1 += ld(a + n0 + 8) * ld(v + n0 + 8);
                            p2 += ld(a + n0 + 16) * ld(v + n0 + 16);
                            p3 += ld(a + n0 + 24) * ld(v + n0 + 24);
                        }
                        for (; n0 < np; n0 += 8) p0 += ld(a + n0) * ld(v + n0);
                    }
                    const v8f p = (p0 + p1) + (p2 + p3);
                    double s = 0;
                    for (int u = 0; u < 8; u++) s += p[u];
                    float *d = dw + (o * C + c) * KK + k;
                    *d = accum_w ? *d + (float)s : (float)s;
                }
    }
    if (dx) {
        const int32_t *start = g->in_start, *tout = g->in_out, *ttap = g->in_tap;
        for (int64_t c = 0; c < C; c++)
            for (int64_t q = 0; q < IS; q++)
                tap_sums(dxt + (c * IS + q) * np, dyt, OP * np, g->oc, w + c * KK, C * KK, tout, ttap, start[q],
                         start[q + 1], np);
        from_batch_last(dxt, g->n, C, IS, np, dx, accum_x, NULL);
    }
}
