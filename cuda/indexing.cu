/*
 * indexing.cu - the CUDA twins of pad, shift and trilu (array_ops.c), one_hot (indexing.c),
 * embed (embed.c), categorical_cross_entropy and kl_multinomial (loss_ext.c).
 *
 * Nothing is planned or checked here that the CPU does not share: the CPU setup (run for
 * every backend) builds pad's and shift's per-axis offset tables (nd_view.h's nl_tabmap in
 * f->state), which are copied to the device once per node; the argument positions, the
 * per-element math and the id tests are index_plans.h's and labels.h's NL_HD functions,
 * which the CPU kernels call too.
 *
 * Bad ids (one_hot, embed, categorical_cross_entropy) fail as on the CPU: the kernels
 * record the first bad position (atomicMin, so the lowest, which the CPU's in-order loop
 * meets first), the host reads it back (a synchronous 8-byte copy) and fails with the CPU's
 * message. Scatter-adds that may meet at one place (pad and shift backwards, whose tables
 * repeat offsets in the reflect/repeat/nearest modes, and embed's weight gradient) use
 * atomicAdd. accum[i] adds into input i's gradient, else it is overwritten; inputs that get
 * no gradient (ids, labels) are zeroed as on the CPU.
 */
#include "bad_entry.cuh"   /* the node's first-bad-position flag, label checks */
extern "C" {
#include "nd_view.h"
#include "labels.h"
#include "index_plans.h"
}

/* ==== pad, shift: the setup's per-axis offset tables ==================================== */

struct tab_dev {                    /* an nl_tabmap with its tables on the device */
    int nd;
    int64_t shape[NL_MAX_NDIM];     /* the output shape */
    int64_t start[NL_MAX_NDIM];     /* axis k's table is tab + start[k] */
    const int64_t *tab;             /* every table: a source offset part, or -1 = outside */
};

struct tab_state {                  /* pad, shift */
    nlc_buf buf;                    /* the tables (int64s in a float buffer) */
    tab_dev d;
    bool ready = false;
};

/* The node's tables on the device, copied from the setup's nl_tabmap on first use. */
static int tab_get(nl_func *f, tab_dev *out) {
    tab_state *st = nlc_state<tab_state>(f);
    if (!st) return -1;
    if (!st->ready || st->buf.dev != f->device_id) {
        const nl_tabmap *m = (const nl_tabmap *)f->state;
        int64_t total = 0;
        st->d.nd = m->nd;
        for (int k = 0; k < m->nd; k++) {
            st->d.shape[k] = m->shape[k];
            st->d.start[k] = m->tab[k] - m->mem;
            total += m->shape[k];
        }
        float *p = st->buf.get(2 * total, f->device_id);
        if (!p) return -1;
        if (total > 0) NLC_CUDA(cudaMemcpy(p, m->mem, (size_t)total * sizeof(int64_t), cudaMemcpyHostToDevice));
        st->d.tab = (const int64_t *)(void *)p;
        st->ready = true;
    }
    *out = st->d;
    return 0;
}

/* Source offset of element j (row-major) of the output, or -1 when a table says outside. */
__device__ __forceinline__ int64_t tab_offset(const tab_dev &t, int64_t j) {
    int64_t off = 0, r = j;
    bool outside = false;
    for (int k = t.nd - 1; k >= 0; k--) {
        const int64_t n = t.shape[k], q = r / n;
        const int64_t v = t.tab[t.start[k] + (r - q * n)];
        if (v < 0) outside = true;
        off += v;
        r = q;
    }
    return outside ? -1 : off;
}

/* x: the input; y: the tables' shape (total elements); y[j] = x[off(j)], value outside */
__global__ void k_tab_gather(tab_dev t, int64_t total, const float *__restrict__ x, float *__restrict__ y,
                             float value) {
    NLC_LOOP(j, total) {
        const int64_t o = tab_offset(t, j);
        y[j] = o < 0 ? value : x[o];
    }
}

/* dy: the tables' shape (total elements); dx: the input's shape; dx[off(j)] += dy[j]
 * (atomic: reflect/repeat/nearest tables repeat offsets) */
__global__ void k_tab_scatter(tab_dev t, int64_t total, const float *__restrict__ dy, float *dx) {
    NLC_LOOP(j, total) {
        const int64_t o = tab_offset(t, j);
        if (o >= 0) atomicAdd(dx + o, dy[j]);
    }
}

static int tab_forward(nl_func *f, float value) {
    tab_dev t;
    if (tab_get(f, &t)) return -1;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(float *, y, nlc_out(f, 0));
    const int64_t total = nl_out(f, 0)->size;
    if (total == 0) return 0;
    k_tab_gather<<<nlc_blocks(total), NLC_THREADS>>>(t, total, x, y, value);
    NLC_LAUNCHED(f->def->name);
    return 0;
}

/* pad: the constant as array_ops.c reads it */
static int pad_forward(nl_func *f) { return tab_forward(f, (float)nl_arg_float(f, PD_VALUE)); }
static int shift_forward(nl_func *f) { return tab_forward(f, 0.0f); }

/* pad's and shift's backward: dx = 0 (unless accumulating), dx[source of j] += dy[j] */
static int tab_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    tab_dev t;
    if (tab_get(f, &t)) return -1;
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
    if (nlc_clear_grad(f, dx, 0, accum[0])) return -1;
    const int64_t total = nl_out(f, 0)->size;
    if (total == 0) return 0;
    k_tab_scatter<<<nlc_blocks(total), NLC_THREADS>>>(t, total, dy, dx);
    NLC_LAUNCHED(f->def->name);
    return 0;
}

/* ==== trilu ============================================================================= */

/* src, dst: (B, rows, cols), total elements; dst = src where kept, else 0; ADD: dst += src
 * where kept */
template <bool ADD>
__global__ void k_trilu(int64_t total, int64_t rows, int64_t cols, int64_t k, bool upper,
                        const float *__restrict__ src, float *dst) {
    NLC_LOOP(e, total) {
        const int64_t j = e % cols, i = (e / cols) % rows;
        const bool keep = nl_trilu_keep(i, j, k, upper);
        if (ADD) {
            if (keep) dst[e] += src[e];
        } else {
            dst[e] = keep ? src[e] : 0.0f;
        }
    }
}

static int trilu_run(nl_func *f, const float *src, float *dst, bool add) {
    const nl_var *x = nl_in(f, 0);
    const int64_t rows = x->shape[x->ndim - 2], cols = x->shape[x->ndim - 1];
    const int64_t total = x->size;
    if (total == 0) return 0;
    const int64_t k = nl_arg_int(f, TU_K);
    const bool upper = nl_arg_bool(f, TU_UPPER);
    if (add) k_trilu<true><<<nlc_blocks(total), NLC_THREADS>>>(total, rows, cols, k, upper, src, dst);
    else k_trilu<false><<<nlc_blocks(total), NLC_THREADS>>>(total, rows, cols, k, upper, src, dst);
    NLC_LAUNCHED("trilu");
    return 0;
}

static int trilu_forward(nl_func *f) {
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(float *, y, nlc_out(f, 0));
    return trilu_run(f, x, y, false);
}

static int trilu_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
    return trilu_run(f, dy, dx, accum[0]);
}

/* ==== one_hot =========================================================================== */

struct oh_classes {                 /* the 'shape' argument: classes per id */
    int m;
    int64_t n[NL_MAX_NDIM];
};

/* x: (rows, m) class ids; y: (rows, block) zeroed beforehand; y[r, flat class] = 1 unless an
 * id is out of range; a non-integer id is recorded in bad */
__global__ void k_one_hot(oh_classes c, int64_t rows, int64_t block, const float *__restrict__ x, float *y,
                          unsigned long long *bad) {
    NLC_LOOP(r, rows) {
        int64_t flat = 0;
        bool inside = true;
        for (int k = 0; k < c.m; k++) {
            int64_t id;
            if (!nl_one_hot_class(x[r * c.m + k], c.n[k], &id)) {
                atomicMin(bad, (unsigned long long)(r * c.m + k));
                inside = false;
                break;
            }
            if (id >= c.n[k]) inside = false;
            flat = flat * c.n[k] + id;
        }
        if (inside) y[r * block + flat] = 1.0f;
    }
}

static int one_hot_forward(nl_func *f) {
    oh_classes c;
    c.m = nl_arg_len(f, OH_SHAPE);
    if (c.m > NL_MAX_NDIM) return nl_error("argument 'shape' has %d entries (at most %d)", c.m, NL_MAX_NDIM);
    int64_t block = 1;
    for (int k = 0; k < c.m; k++) {
        c.n[k] = nl_arg_at(f, OH_SHAPE, k);
        block *= c.n[k];
    }
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(float *, y, nlc_out(f, 0));
    if (nlc_fill(f->device_id, y, 0.0f, nl_out(f, 0)->size)) return -1;
    const int64_t rows = c.m ? nl_in(f, 0)->size / c.m : 0;
    if (rows == 0) return 0;
    NLC_PTR(unsigned long long *, bad, nlc_node_flag(f));
    k_one_hot<<<nlc_blocks(rows), NLC_THREADS>>>(c, rows, block, x, y, bad);
    NLC_LAUNCHED("one_hot");
    int64_t pos;
    float v;
    if (nlc_flag_read(bad, x, &pos, &v)) return -1;
    return pos < 0 ? 0 : nl_one_hot_bad(v, pos);
}

/* the ids get no gradient */
static int one_hot_backward(nl_func *f, const bool *prop, const bool *accum) {
    nl_no_grad_input(f, 0, prop, accum);
    return 0;
}

/* ==== embed ============================================================================= */

/* x: (n_ids) ids; records the first that is not a row id of w (rows rows) */
__global__ void k_embed_check(int64_t n_ids, int64_t rows, const float *__restrict__ x, unsigned long long *bad) {
    NLC_LOOP(i, n_ids) {
        if (!nl_embed_id_ok(x[i], rows)) atomicMin(bad, (unsigned long long)i);
    }
}

/* x: (n_ids) checked ids; w: (rows, row); y: (n_ids, row) = w[x[i], :] */
__global__ void k_embed_fwd(int64_t n_ids, int64_t rows, int64_t row, const float *__restrict__ x,
                            const float *__restrict__ w, float *__restrict__ y) {
    NLC_LOOP(e, n_ids * row) {
        const int64_t i = e / row, j = e - i * row;
        const float v = x[i];
        y[e] = nl_embed_id_ok(v, rows) ? w[(int64_t)v * row + j] : 0.0f;
    }
}

/* x: (n_ids) checked ids; dy: (n_ids, row); dw: (rows, row), dw[x[i], :] += dy[i, :]
 * (atomic: ids repeat) */
__global__ void k_embed_bwd(int64_t n_ids, int64_t rows, int64_t row, const float *__restrict__ x,
                            const float *__restrict__ dy, float *dw) {
    NLC_LOOP(e, n_ids * row) {
        const int64_t i = e / row, j = e - i * row;
        const float v = x[i];
        if (nl_embed_id_ok(v, rows)) atomicAdd(dw + (int64_t)v * row + j, dy[e]);
    }
}

/* Fails with embed.c's message when an id of x is not a row id of w. */
static int embed_check(nl_func *f, const embed_state *s, const float *x) {
    if (s->n_ids == 0) return 0;
    NLC_PTR(unsigned long long *, bad, nlc_node_flag(f));
    k_embed_check<<<nlc_blocks(s->n_ids), NLC_THREADS>>>(s->n_ids, s->rows, x, bad);
    NLC_LAUNCHED("embed");
    int64_t pos;
    float v;
    if (nlc_flag_read(bad, x, &pos, &v)) return -1;
    return pos < 0 ? 0 : nl_embed_bad(v, pos, s->rows);
}

static int embed_forward(nl_func *f) {
    const embed_state *s = (const embed_state *)f->state;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(const float *, w, nlc_in(f, 1));
    NLC_PTR(float *, y, nlc_out(f, 0));
    if (embed_check(f, s, x)) return -1;
    const int64_t total = s->n_ids * s->row;
    if (total == 0) return 0;
    k_embed_fwd<<<nlc_blocks(total), NLC_THREADS>>>(s->n_ids, s->rows, s->row, x, w, y);
    NLC_LAUNCHED("embed");
    return 0;
}

static int embed_backward(nl_func *f, const bool *prop, const bool *accum) {
    const embed_state *s = (const embed_state *)f->state;
    if (prop[0] && !accum[0]) {     /* ids get no gradient */
        NLC_PTR(float *, dx, nlc_in_grad(f, 0, false));
        if (nlc_fill(f->device_id, dx, 0.0f, s->n_ids)) return -1;
    }
    if (!prop[1]) return 0;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    NLC_PTR(float *, dw, nlc_in_grad(f, 1, accum[1]));
    if (!accum[1] && nlc_fill(f->device_id, dw, 0.0f, s->rows * s->row)) return -1;
    if (embed_check(f, s, x)) return -1;
    const int64_t total = s->n_ids * s->row;
    if (total == 0) return 0;
    k_embed_bwd<<<nlc_blocks(total), NLC_THREADS>>>(s->n_ids, s->rows, s->row, x, dy, dw);
    NLC_LAUNCHED("embed");
    return 0;
}

/* ==== categorical_cross_entropy ========================================================= */

/* x: (outer, C, inner); t, y: (outer, 1, inner); y = -log max(x[label], FLT_MIN); a bad
 * label is recorded in bad */
__global__ void k_cce_fwd(int64_t outer, int64_t C, int64_t inner, const float *__restrict__ x,
                          const float *__restrict__ t, float *__restrict__ y, unsigned long long *bad) {
    NLC_LOOP(pos, outer * inner) {
        const int64_t l = nlc_label_at(t, pos, C, bad);
        if (l < 0) continue;
        const int64_t o = pos / inner, i = pos - o * inner;
        y[pos] = nl_cce_fwd(x[(o * C + l) * inner + i]);
    }
}

/* x, dx: (outer, C, inner); t, dy: (outer, 1, inner); dx[label] -= dy / max(x[label],
 * FLT_MIN) (one position per thread: no two threads meet); a bad label is recorded in bad */
__global__ void k_cce_bwd(int64_t outer, int64_t C, int64_t inner, const float *__restrict__ x,
                          const float *__restrict__ t, const float *__restrict__ dy, float *dx,
                          unsigned long long *bad) {
    NLC_LOOP(pos, outer * inner) {
        const int64_t l = nlc_label_at(t, pos, C, bad);
        if (l < 0) continue;
        const int64_t o = pos / inner, i = pos - o * inner;
        const int64_t k = (o * C + l) * inner + i;
        dx[k] -= nl_cce_bwd(x[k], dy[pos]);
    }
}

static int cce_forward(nl_func *f) {
    int64_t outer, C, inner;
    if (nl_class_dims(f, CCE_AXIS, &outer, &C, &inner)) return -1;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(const float *, t, nlc_in(f, 1));
    NLC_PTR(float *, y, nlc_out(f, 0));
    const int64_t n = outer * inner;
    if (n == 0) return 0;
    NLC_PTR(unsigned long long *, bad, nlc_node_flag(f));
    k_cce_fwd<<<nlc_blocks(n), NLC_THREADS>>>(outer, C, inner, x, t, y, bad);
    NLC_LAUNCHED("categorical_cross_entropy");
    return nlc_label_check(bad, t, C);
}

static int cce_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (prop[0]) {
        int64_t outer, C, inner;
        if (nl_class_dims(f, CCE_AXIS, &outer, &C, &inner)) return -1;
        NLC_PTR(const float *, x, nlc_in(f, 0));
        NLC_PTR(const float *, t, nlc_in(f, 1));
        NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
        NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
        if (nlc_clear_grad(f, dx, 0, accum[0])) return -1;
        const int64_t n = outer * inner;
        if (n > 0) {
            NLC_PTR(unsigned long long *, bad, nlc_node_flag(f));
            k_cce_bwd<<<nlc_blocks(n), NLC_THREADS>>>(outer, C, inner, x, t, dy, dx, bad);
            NLC_LAUNCHED("categorical_cross_entropy");
            if (nlc_label_check(bad, t, C)) return -1;
        }
    }
    nl_no_grad_input(f, 1, prop, accum);   /* the labels */
    return 0;
}

/* ==== kl_multinomial ==================================================================== */

/* p, q: (n, k); y: (n) = sum over k of p (log(p + e) - log(q + e)), in double: one block
 * per row (blockDim.x = NLC_THREADS, a power of two), its threads' partial sums added in
 * shared memory */
__global__ void k_kl_fwd(int64_t n, int64_t k, const float *__restrict__ p, const float *__restrict__ q,
                         float *__restrict__ y) {
    __shared__ double sh[NLC_THREADS];
    for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
        double s = 0.0;
        for (int64_t j = threadIdx.x; j < k; j += blockDim.x) s += nl_kl_term(p[i * k + j], q[i * k + j]);
        sh[threadIdx.x] = s;
        __syncthreads();
        for (unsigned w = blockDim.x / 2; w > 0; w >>= 1) {
            if (threadIdx.x < w) sh[threadIdx.x] += sh[threadIdx.x + w];
            __syncthreads();
        }
        if (threadIdx.x == 0) y[i] = (float)sh[0];
        __syncthreads();             /* sh is reused by the next row */
    }
}

/* p, q, dx: (n, k) (total = n k); dy: (n); dx = dp (WHICH 0) or dq (WHICH 1), added when ACC */
template <int WHICH, bool ACC>
__global__ void k_kl_bwd(int64_t total, int64_t k, const float *__restrict__ p, const float *__restrict__ q,
                         const float *__restrict__ dy, float *dx) {
    NLC_LOOP(j, total) {
        const float g = WHICH == 0 ? nl_kl_dp(p[j], q[j], dy[j / k]) : nl_kl_dq(p[j], q[j], dy[j / k]);
        dx[j] = ACC ? dx[j] + g : g;
    }
}

static int kl_forward(nl_func *f) {
    int64_t n, k;
    if (nl_kl_dims(f, &n, &k) < 0) return -1;
    NLC_PTR(const float *, p, nlc_in(f, 0));
    NLC_PTR(const float *, q, nlc_in(f, 1));
    NLC_PTR(float *, y, nlc_out(f, 0));
    if (n == 0) return 0;
    const unsigned blocks = (unsigned)(n < (1 << 20) ? n : (1 << 20));
    k_kl_fwd<<<blocks, NLC_THREADS>>>(n, k, p, q, y);
    NLC_LAUNCHED("kl_multinomial");
    return 0;
}

template <int WHICH>
static int kl_grad(nl_func *f, int64_t n, int64_t k, const float *p, const float *q, const float *dy, bool acc) {
    NLC_PTR(float *, dx, nlc_in_grad(f, WHICH, acc));
    const int64_t total = n * k;
    if (total == 0) return 0;
    if (acc) k_kl_bwd<WHICH, true><<<nlc_blocks(total), NLC_THREADS>>>(total, k, p, q, dy, dx);
    else k_kl_bwd<WHICH, false><<<nlc_blocks(total), NLC_THREADS>>>(total, k, p, q, dy, dx);
    NLC_LAUNCHED("kl_multinomial");
    return 0;
}

/* p before q: the graph sets accum on the second of two identical inputs */
static int kl_backward(nl_func *f, const bool *prop, const bool *accum) {
    int64_t n, k;
    if (nl_kl_dims(f, &n, &k) < 0) return -1;
    if (!prop[0] && !prop[1]) return 0;
    NLC_PTR(const float *, p, nlc_in(f, 0));
    NLC_PTR(const float *, q, nlc_in(f, 1));
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    if (prop[0] && kl_grad<0>(f, n, k, p, q, dy, accum[0])) return -1;
    if (prop[1] && kl_grad<1>(f, n, k, p, q, dy, accum[1])) return -1;
    return 0;
}

/* ---- registration ---- */

int nlc_register_indexing(void) {
    if (nlc_register("pad", "cuda", pad_forward, tab_backward)) return -1;
    if (nlc_register("shift", "cuda", shift_forward, tab_backward)) return -1;
    if (nlc_register("trilu", "cuda", trilu_forward, trilu_backward)) return -1;
    if (nlc_register("one_hot", "cuda", one_hot_forward, one_hot_backward)) return -1;
    if (nlc_register("embed", "cuda", embed_forward, embed_backward)) return -1;
    if (nlc_register("categorical_cross_entropy", "cuda", cce_forward, cce_backward)) return -1;
    if (nlc_register("kl_multinomial", "cuda", kl_forward, kl_backward)) return -1;
    return 0;
}
