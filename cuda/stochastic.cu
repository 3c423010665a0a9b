/*
 * stochastic.cu - the CUDA twins of the stochastic functions (stochastic.c): dropout, rand,
 * randint, randn, random_choice, random_crop, random_flip, random_shift, random_erase.
 *
 * One rule: a seed gives exactly the CPU's numbers. So every random value is drawn on the
 * host, with the node's generator, through stochastic_plan.h's helpers (the ones the CPU
 * draws with, in the CPU's order), into the node's pinned staging buffer; one asynchronous
 * upload per forward sends the draws to the device and kernels apply them there. The
 * activations never come back to the host. What is uploaded:
 *   dropout              the keep mask, one bit per element (kept for backward)
 *   rand, randint, randn the values, straight into y
 *   random_choice        the uniforms (doubles); the device picks from w as the CPU does
 *                        (cumulative weights summed in order in double) and keeps the picks
 *                        for backward. A check kernel first finds the first population the
 *                        CPU would reject (one 8-byte read back, as gather.cu's checks): the
 *                        CPU fails before drawing for it, so the generator is advanced past
 *                        the populations before it and the CPU's message is given.
 *   crop, flip, shift    one int64 per (sample, axis): window start, 1 = flipped, shift
 *   random_erase         per (try, sample[, channel]) patch: top, left, height, width (0 when
 *                        it does not erase) and where its replacement values start; the
 *                        values follow
 * Backward gathers per input element, adding the output gradients that reach it in the
 * CPU's order (shift's 'nearest'/'reflect' borders, choices with replacement), so sums round
 * as on the CPU; accum[i] adds into input i's gradient (__fadd_rn: never fused into a
 * multiply-add), else it is overwritten.
 *
 * The staging buffer (cudaMallocHost) belongs to the node, grows and never shrinks; an
 * event recorded after each upload is waited on before the next forward draws into it
 * (long done by then in a training loop). Device buffers come from the caching allocator.
 */
#include "common.cuh"
#include "pinned_stage.cuh"
extern "C" {
#include "stochastic_plan.h"
}
#include <string.h>

/* ---- per-node state: pinned staging (pinned_stage.cuh) and the device copies of the draws ---- */

struct sto_state {
    nlc_pinned_stage stage;
    nlc_buf draws;      /* what the last forward uploaded (backward reads it again) */
    nlc_buf picks;      /* random_choice: the chosen positions (int64) */
    nlc_buf work;       /* random_choice: cumulative weights / the weights left (double) */
    nlc_buf flag;       /* random_choice: the first bad population */
};

/* A device buffer of at least bytes bytes. NULL with an error. */
static void *buf_bytes(nlc_buf &b, size_t bytes, int dev) { return b.get((int64_t)((bytes + 3) / 4), dev); }

/* ==== dropout ============================================================================ */

__device__ __forceinline__ bool bit_at(const uint32_t *bits, int64_t i) { return (bits[i >> 5] >> (i & 31)) & 1u; }

/* x, y: (n); keep: (ceil(n / 32)) words, element i at bit i % 32 of word i / 32 */
__global__ void k_dropout_fwd(int64_t n, const float *__restrict__ x, const uint32_t *__restrict__ keep, float scale,
                              float *__restrict__ y) {
    NLC_LOOP(i, n) y[i] = nl_dropout_apply(x[i], bit_at(keep, i), scale);
}

/* dy, dx: (n); dx = dy * keep * scale (+ dx when accum) */
__global__ void k_dropout_bwd(int64_t n, const float *__restrict__ dy, const uint32_t *__restrict__ keep, float scale,
                              float *dx, bool accum) {
    NLC_LOOP(i, n) {
        const float v = nl_dropout_apply(dy[i], bit_at(keep, i), scale);
        dx[i] = accum ? __fadd_rn(dx[i], v) : v;
    }
}

static int dropout_forward(nl_func *f) {
    if (nlc_set_device(f->device_id)) return -1;   /* kernels and copies on the node's device */
    NLC_PTR(sto_state *, st, nlc_state<sto_state>(f));
    const int64_t n = nl_in(f, 0)->size, words = (n + 31) / 32;
    const double p = nl_arg_float(f, DO_P);
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(float *, y, nlc_out(f, 0));
    NLC_PTR(uint32_t *, keep, (uint32_t *)buf_bytes(st->draws, (size_t)words * 4, f->device_id));
    NLC_PTR(uint32_t *, bits, (uint32_t *)st->stage.get((size_t)words * 4));
    nl_rng *g = nl_stoch_rng(f);
    for (int64_t w = 0; w < words; w++) {
        const int m = n - w * 32 < 32 ? (int)(n - w * 32) : 32;
        uint32_t v = 0;
        for (int j = 0; j < m; j++) v |= (uint32_t)nl_dropout_keep(g, p) << j;
        bits[w] = v;
    }
    if (st->stage.upload(keep, (size_t)words * 4)) return -1;
    if (n == 0) return 0;
    k_dropout_fwd<<<nlc_blocks(n), NLC_THREADS>>>(n, x, keep, nl_dropout_scale(p), y);
    NLC_LAUNCHED("dropout");
    return 0;
}

static int dropout_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (nlc_set_device(f->device_id)) return -1;   /* kernels and copies on the node's device */
    if (!prop[0]) return 0;
    NLC_PTR(sto_state *, st, nlc_state<sto_state>(f));
    const int64_t n = nl_in(f, 0)->size;
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
    if (n == 0) return 0;
    if (!st->draws.p) return nl_error("backward before forward");
    k_dropout_bwd<<<nlc_blocks(n), NLC_THREADS>>>(n, dy, (const uint32_t *)st->draws.p,
                                                  nl_dropout_scale(nl_arg_float(f, DO_P)), dx, accum[0]);
    NLC_LAUNCHED("dropout");
    return 0;
}

/* ==== rand, randint, randn: the values drawn on the host are y ========================== */

static int gen_forward(nl_func *f) {
    if (nlc_set_device(f->device_id)) return -1;   /* kernels and copies on the node's device */
    NLC_PTR(sto_state *, st, nlc_state<sto_state>(f));
    const int64_t n = nl_out(f, 0)->size;
    NLC_PTR(float *, y, nlc_out(f, 0));
    NLC_PTR(float *, h, (float *)st->stage.get((size_t)n * sizeof(float)));
    nl_gen_draw(f, nl_stoch_rng(f), h, n);
    return st->stage.upload(y, (size_t)n * sizeof(float));
}

static int gen_backward(nl_func *f, const bool *prop, const bool *accum) {
    (void)f; (void)prop; (void)accum;   /* no inputs */
    return 0;
}

/* ==== random_choice: populations of W along x's last axis ================================ */

/* x, w: (outer, W); y: (outer, inner) */
static void rc_dims(nl_func *f, int64_t *outer, int64_t *W, int64_t *inner) {
    const nl_var *x = nl_in(f, 0);
    *W = x->shape[x->ndim - 1];
    *outer = x->size / *W;
    *inner = 1;
    for (int j = 0; j < nl_arg_len(f, RC_SHAPE); j++) *inner *= nl_arg_at(f, RC_SHAPE, j);
}

/* w: (outer, W); records the first population whose weights the CPU rejects */
__global__ void k_rc_check(int64_t outer, int64_t W, int64_t inner, bool replace, const float *__restrict__ w,
                           unsigned long long *bad) {
    NLC_LOOP(b, outer)
        if (nl_rc_check(w + b * W, W, inner, replace) >= 0) atomicMin(bad, (unsigned long long)b);
}

/* w, c: (outer, W); c = the cumulative weights of each population (in order, in double) */
__global__ void k_rc_cumsum(int64_t outer, int64_t W, const float *__restrict__ w, double *__restrict__ c) {
    NLC_LOOP(b, outer) nl_rc_cumsum(w + b * W, W, c + b * W);
}

/* x, w, c: (outer, W); u, pick, y: (outer, inner): with replacement, each u picks by itself */
__global__ void k_rc_pick_replace(int64_t outer, int64_t W, int64_t inner, const float *__restrict__ x,
                                  const float *__restrict__ w, const double *__restrict__ c,
                                  const double *__restrict__ u, int64_t *__restrict__ pick, float *__restrict__ y) {
    NLC_LOOP(e, outer * inner) {
        const int64_t b = e / inner;
        const int64_t k = nl_rc_pick_replace(w + b * W, c + b * W, W, u[e]);
        pick[e] = k;
        y[e] = x[b * W + k];
    }
}

/* x, w, c: (outer, W); u, pick, y: (outer, inner): without replacement, one thread per
 * population draws, removes, repeats (c: the weights left) */
__global__ void k_rc_pick_without(int64_t outer, int64_t W, int64_t inner, const float *__restrict__ x,
                                  const float *__restrict__ w, double *__restrict__ c,
                                  const double *__restrict__ u, int64_t *__restrict__ pick, float *__restrict__ y) {
    NLC_LOOP(b, outer) {
        double *cb = c + b * W;
        for (int64_t i = 0; i < W; i++) cb[i] = w[b * W + i];
        for (int64_t k = 0; k < inner; k++) {
            const int64_t j = nl_rc_pick_without(cb, W, u[b * inner + k]);
            pick[b * inner + k] = j;
            y[b * inner + k] = x[b * W + j];
        }
    }
}

/* dy, pick: (outer, inner); dx: (outer, W) += dy at the picks, in order per population */
__global__ void k_rc_bwd(int64_t outer, int64_t W, int64_t inner, const float *__restrict__ dy,
                         const int64_t *__restrict__ pick, float *__restrict__ dx) {
    NLC_LOOP(b, outer)
        for (int64_t j = 0; j < inner; j++) dx[b * W + pick[b * inner + j]] += dy[b * inner + j];
}

static int rc_forward(nl_func *f) {
    if (nlc_set_device(f->device_id)) return -1;   /* kernels and copies on the node's device */
    NLC_PTR(sto_state *, st, nlc_state<sto_state>(f));
    int64_t outer, W, inner;
    rc_dims(f, &outer, &W, &inner);
    const int dev = f->device_id;
    const bool replace = nl_arg_bool(f, RC_REPLACE);
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(const float *, w, nlc_in(f, 1));
    NLC_PTR(float *, y, nlc_out(f, 0));
    nl_rng *g = nl_stoch_rng(f);
    if (outer > 0) {                        /* the CPU checks each population before drawing for it */
        NLC_PTR(unsigned long long *, bad, nlc_flag_arm(st->flag, dev));
        k_rc_check<<<nlc_blocks(outer), NLC_THREADS>>>(outer, W, inner, replace, w, bad);
        NLC_LAUNCHED("random_choice");
        int64_t b = -1;
        if (nlc_flag_key(bad, &b)) return -1;
        if (b >= 0) {
            for (int64_t i = 0; i < b * inner; i++) nl_rngs_uniform01(g);
            NLC_PTR(float *, wb, (float *)st->stage.get((size_t)W * sizeof(float)));
            NLC_CUDA(cudaMemcpy(wb, w + b * W, (size_t)W * sizeof(float), cudaMemcpyDeviceToHost));
            const int64_t code = nl_rc_check(wb, W, inner, replace);
            if (code < 0) return nl_error("input 'w' population %lld was rejected on the device only", (long long)(b + 1));
            return nl_rc_fail(wb, W, b, inner, code);
        }
    }
    const int64_t n = outer * inner;
    NLC_PTR(double *, u, (double *)buf_bytes(st->draws, (size_t)n * sizeof(double), dev));
    NLC_PTR(int64_t *, pick, (int64_t *)buf_bytes(st->picks, (size_t)n * sizeof(int64_t), dev));
    NLC_PTR(double *, c, (double *)buf_bytes(st->work, (size_t)(outer * W) * sizeof(double), dev));
    NLC_PTR(double *, hu, (double *)st->stage.get((size_t)n * sizeof(double)));
    for (int64_t i = 0; i < n; i++) hu[i] = nl_rngs_uniform01(g);
    if (st->stage.upload(u, (size_t)n * sizeof(double))) return -1;
    if (n == 0) return 0;
    if (replace) {
        k_rc_cumsum<<<nlc_blocks(outer), NLC_THREADS>>>(outer, W, w, c);
        k_rc_pick_replace<<<nlc_blocks(n), NLC_THREADS>>>(outer, W, inner, x, w, c, u, pick, y);
    } else {
        k_rc_pick_without<<<nlc_blocks(outer), NLC_THREADS>>>(outer, W, inner, x, w, c, u, pick, y);
    }
    NLC_LAUNCHED("random_choice");
    return 0;
}

/* dx[chosen] += dy, and the same for w (NNabla's rule) */
static int rc_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (nlc_set_device(f->device_id)) return -1;   /* kernels and copies on the node's device */
    if (!prop[0] && !prop[1]) return 0;
    NLC_PTR(sto_state *, st, nlc_state<sto_state>(f));
    int64_t outer, W, inner;
    rc_dims(f, &outer, &W, &inner);
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    for (int k = 0; k < 2; k++) {
        if (!prop[k]) continue;
        NLC_PTR(float *, dx, nlc_in_grad(f, k, accum[k]));
        if (nlc_clear_grad(f, dx, k, accum[k])) return -1;
        if (outer * inner == 0) continue;
        if (!st->picks.p) return nl_error("backward before forward");
        k_rc_bwd<<<nlc_blocks(outer), NLC_THREADS>>>(outer, W, inner, dy, (const int64_t *)st->picks.p, dx);
        NLC_LAUNCHED("random_choice");
    }
    return 0;
}

/* ==== random_crop, random_flip, random_shift: per-sample index maps ===================== */

/* x: (S, xs...), y: (S, ys...) over the nd axes from base_axis on */
struct remap_dev {
    int nd, kind, mode;
    float fill;
    int64_t S, xblock, yblock;
    int64_t xs[NL_MAX_NDIM], ys[NL_MAX_NDIM], xstr[NL_MAX_NDIM], ystr[NL_MAX_NDIM];
};

static remap_dev remap_plan(nl_func *f) {
    const nl_rstate *rs = (const nl_rstate *)f->state;
    const nl_remap *r = &rs->rm;
    remap_dev p;
    memset(&p, 0, sizeof p);
    p.nd = r->nd;
    p.kind = rs->kind;
    p.mode = rs->kind == NL_REMAP_SHIFT ? (int)nl_arg_int(f, SH_BORDER) : 0;
    p.fill = rs->kind == NL_REMAP_SHIFT ? (float)nl_arg_float(f, SH_CONSTANT) : 0.0f;
    p.S = r->S;
    p.xblock = r->xblock;
    p.yblock = r->yblock;
    int64_t ystr = 1;
    for (int d = r->nd - 1; d >= 0; d--) {
        p.xs[d] = r->xs[d];
        p.ys[d] = r->ys[d];
        p.xstr[d] = r->xstr[d];
        p.ystr[d] = ystr;
        ystr *= r->ys[d];
    }
    return p;
}

/* x: (S, xs...); par: (S, nd) draws; y: (S, ys...) = x at the mapped indices (fill where an
 * index is -1) */
__global__ void k_remap_fwd(remap_dev p, const int64_t *__restrict__ par, const float *__restrict__ x,
                            float *__restrict__ y) {
    NLC_LOOP(e, p.S * p.yblock) {
        const int64_t s = e / p.yblock, o = e - s * p.yblock;
        int64_t off = 0;
        bool out = false;
        for (int d = 0; d < p.nd; d++) {
            const int64_t i = o / p.ystr[d] % p.ys[d];
            const int64_t k = nl_remap_at(p.kind, p.mode, par[s * p.nd + d], p.ys[d], i);
            if (k < 0) out = true;
            off += k * p.xstr[d];
        }
        y[e] = out ? p.fill : x[s * p.xblock + off];
    }
}

/* dy: (S, ys...); par: (S, nd); dx: (S, xs...) = (dx when accum, else 0) + the dy of every
 * output that read the element, in the CPU's (row-major) order */
__global__ void k_remap_bwd(remap_dev p, const int64_t *__restrict__ par, const float *__restrict__ dy, float *dx,
                            bool accum) {
    NLC_LOOP(e, p.S * p.xblock) {
        const int64_t s = e / p.xblock, o = e - s * p.xblock;
        int64_t r[NL_MAX_NDIM][4], cnt[NL_MAX_NDIM], j[NL_MAX_NDIM];
        bool none = false;
        for (int d = 0; d < p.nd; d++) {
            const int64_t k = o / p.xstr[d] % p.xs[d];
            nl_remap_from(p.kind, p.mode, par[s * p.nd + d], p.ys[d], k, r[d]);
            const int64_t c0 = r[d][1] >= r[d][0] ? r[d][1] - r[d][0] + 1 : 0;
            const int64_t c1 = r[d][3] >= r[d][2] ? r[d][3] - r[d][2] + 1 : 0;
            cnt[d] = c0 + c1;
            r[d][1] = c0;                         /* from here: start, count of the first range, start of the second */
            j[d] = 0;
            if (cnt[d] == 0) none = true;
        }
        float acc = accum ? dx[e] : 0.0f;
        if (!none) {
            const float *dys = dy + s * p.yblock;
            for (;;) {
                int64_t off = 0;
                for (int d = 0; d < p.nd; d++)
                    off += (j[d] < r[d][1] ? r[d][0] + j[d] : r[d][2] + (j[d] - r[d][1])) * p.ystr[d];
                acc = __fadd_rn(acc, dys[off]);
                int d = p.nd - 1;
                while (d >= 0 && ++j[d] == cnt[d]) j[d--] = 0;
                if (d < 0) break;
            }
        }
        dx[e] = acc;
    }
}

static int remap_forward(nl_func *f) {
    if (nlc_set_device(f->device_id)) return -1;   /* kernels and copies on the node's device */
    NLC_PTR(sto_state *, st, nlc_state<sto_state>(f));
    const remap_dev p = remap_plan(f);
    const size_t bytes = (size_t)(p.S * p.nd) * sizeof(int64_t);
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(float *, y, nlc_out(f, 0));
    NLC_PTR(int64_t *, par, (int64_t *)buf_bytes(st->draws, bytes, f->device_id));
    NLC_PTR(int64_t *, h, (int64_t *)st->stage.get(bytes));
    if (nl_remap_draw(f, nl_stoch_rng(f), h)) return -1;
    if (st->stage.upload(par, bytes)) return -1;
    const int64_t total = p.S * p.yblock;
    if (total == 0) return 0;
    k_remap_fwd<<<nlc_blocks(total), NLC_THREADS>>>(p, par, x, y);
    NLC_LAUNCHED(f->def->name);
    return 0;
}

static int remap_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (nlc_set_device(f->device_id)) return -1;   /* kernels and copies on the node's device */
    if (!prop[0]) return 0;
    NLC_PTR(sto_state *, st, nlc_state<sto_state>(f));
    const remap_dev p = remap_plan(f);
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
    const int64_t total = p.S * p.xblock;
    if (total == 0) return 0;
    if (!st->draws.p) return nl_error("backward before forward");
    k_remap_bwd<<<nlc_blocks(total), NLC_THREADS>>>(p, (const int64_t *)st->draws.p, dy, dx, accum[0]);
    NLC_LAUNCHED(f->def->name);
    return 0;
}

/* ==== random_erase ======================================================================== */

/* One patch of one (try, sample[, channel]); he = we = 0 when it does not erase. Its values,
 * row by row and channel after channel when shared, start at vals[voff]. */
struct erase_rec { int64_t ys, xs, he, we, voff; };

/* B samples of C channels of H x W (strides sc, sh, sw in a sample), N tries, Cp patches per
 * (try, sample): 1 when shared, else C */
struct erase_dev {
    int64_t B, C, H, W, sc, sh, sw, N, Cp;
    bool share;
};

static erase_dev erase_plan(nl_func *f, const nl_erase_dims *e) {
    erase_dev d;
    d.B = e->B; d.C = e->C; d.H = e->H; d.W = e->W;
    d.sc = e->sc; d.sh = e->sh; d.sw = e->sw;
    d.N = nl_arg_int(f, RE_N);
    d.share = nl_arg_bool(f, RE_SHARE);
    d.Cp = d.share ? 1 : e->C;
    return d;
}

/* The last patch (highest try) covering element r of sample b (-1: none); *c its channel. */
__device__ __forceinline__ int64_t erase_cover(const erase_dev &d, const erase_rec *rec, int64_t b, int64_t r,
                                               int64_t *c, int64_t *h, int64_t *w) {
    *c = r / d.sc % d.C;
    *h = r / d.sh % d.H;
    *w = r / d.sw % d.W;
    for (int64_t n = d.N - 1; n >= 0; n--) {
        const int64_t q = (n * d.B + b) * d.Cp + (d.share ? 0 : *c);
        const erase_rec &p = rec[q];
        if (*h >= p.ys && *h < p.ys + p.he && *w >= p.xs && *w < p.xs + p.we) return q;
    }
    return -1;
}

/* x, y: (B, C H W in x's layout); rec: (N, B, Cp) patches; vals: their values */
__global__ void k_erase_fwd(erase_dev d, const erase_rec *__restrict__ rec, const float *__restrict__ vals,
                            const float *__restrict__ x, float *__restrict__ y) {
    const int64_t block = d.C * d.H * d.W;
    NLC_LOOP(e, d.B * block) {
        const int64_t b = e / block;
        int64_t c, h, w;
        const int64_t q = erase_cover(d, rec, b, e - b * block, &c, &h, &w);
        if (q < 0) {
            y[e] = x[e];
        } else {
            const erase_rec &p = rec[q];
            y[e] = vals[p.voff + (d.share ? c * p.he * p.we : 0) + (h - p.ys) * p.we + (w - p.xs)];
        }
    }
}

/* dy, dx: (B, C H W); dx = dy outside the erased pixels, 0 inside (dy everywhere without
 * ste_fine_grained), + dx when accum */
__global__ void k_erase_bwd(erase_dev d, const erase_rec *__restrict__ rec, const float *__restrict__ dy, float *dx,
                            bool ste, bool accum) {
    const int64_t block = d.C * d.H * d.W;
    NLC_LOOP(e, d.B * block) {
        float v = dy[e];
        if (ste) {
            const int64_t b = e / block;
            int64_t c, h, w;
            v = v * (erase_cover(d, rec, b, e - b * block, &c, &h, &w) >= 0 ? 0.0f : 1.0f);
        }
        dx[e] = accum ? __fadd_rn(dx[e], v) : v;
    }
}

static int erase_forward(nl_func *f) {
    if (nlc_set_device(f->device_id)) return -1;   /* kernels and copies on the node's device */
    NLC_PTR(sto_state *, st, nlc_state<sto_state>(f));
    nl_erase_dims e = {};
    if (nl_erase_dims_of(f, &e)) return -1;
    const erase_dev d = erase_plan(f, &e);
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(float *, y, nlc_out(f, 0));
    const size_t rec_bytes = (size_t)(d.N * d.B * d.Cp) * sizeof(erase_rec);
    NLC_PTR(unsigned char *, h, st->stage.get(rec_bytes));
    nl_rng *g = nl_stoch_rng(f);
    nl_erase_walk wk;
    nl_erase_walk_init(&wk, f, &e);
    int64_t nv = 0;                         /* values drawn */
    while (nl_erase_walk_next(&wk, g)) {
        if (wk.fresh) {
            erase_rec r = {wk.ys, wk.xs, wk.on ? wk.he : 0, wk.on ? wk.we : 0, nv};
            memcpy(h + (size_t)((wk.n * d.B + wk.b) * d.Cp + (d.share ? 0 : wk.c)) * sizeof r, &r, sizeof r);
        }
        if (!wk.on) continue;
        const int64_t need = wk.he * wk.we;
        const size_t used = rec_bytes + (size_t)nv * sizeof(float);
        if (used + (size_t)need * sizeof(float) > st->stage.bytes) {
            h = st->stage.get(used + (size_t)need * sizeof(float), used);
            if (!h) return -1;
        }
        float *vals = (float *)(h + rec_bytes);
        for (int64_t k = 0; k < need; k++) vals[nv++] = nl_erase_value(&wk, g);
    }
    const size_t bytes = rec_bytes + (size_t)nv * sizeof(float);
    NLC_PTR(unsigned char *, dd, (unsigned char *)buf_bytes(st->draws, bytes, f->device_id));
    if (st->stage.upload(dd, bytes)) return -1;
    const int64_t total = nl_in(f, 0)->size;
    if (total == 0) return 0;
    k_erase_fwd<<<nlc_blocks(total), NLC_THREADS>>>(d, (const erase_rec *)dd, (const float *)(dd + rec_bytes), x, y);
    NLC_LAUNCHED("random_erase");
    return 0;
}

static int erase_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (nlc_set_device(f->device_id)) return -1;   /* kernels and copies on the node's device */
    if (!prop[0]) return 0;
    NLC_PTR(sto_state *, st, nlc_state<sto_state>(f));
    nl_erase_dims e = {};
    if (nl_erase_dims_of(f, &e)) return -1;
    const erase_dev d = erase_plan(f, &e);
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
    const int64_t total = nl_in(f, 0)->size;
    if (total == 0) return 0;
    const bool ste = nl_arg_bool(f, RE_STE);
    if (ste && !st->draws.p) return nl_error("backward before forward");
    k_erase_bwd<<<nlc_blocks(total), NLC_THREADS>>>(d, (const erase_rec *)st->draws.p, dy, dx, ste, accum[0]);
    NLC_LAUNCHED("random_erase");
    return 0;
}

/* ---- registration ---- */

int nlc_register_stochastic(void) {
    if (nlc_register("dropout", "cuda", dropout_forward, dropout_backward)) return -1;
    if (nlc_register("rand", "cuda", gen_forward, gen_backward)) return -1;
    if (nlc_register("randint", "cuda", gen_forward, gen_backward)) return -1;
    if (nlc_register("randn", "cuda", gen_forward, gen_backward)) return -1;
    if (nlc_register("random_choice", "cuda", rc_forward, rc_backward)) return -1;
    if (nlc_register("random_crop", "cuda", remap_forward, remap_backward)) return -1;
    if (nlc_register("random_flip", "cuda", remap_forward, remap_backward)) return -1;
    if (nlc_register("random_shift", "cuda", remap_forward, remap_backward)) return -1;
    if (nlc_register("random_erase", "cuda", erase_forward, erase_backward)) return -1;
    return 0;
}
