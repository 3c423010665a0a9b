/*
 * gather.cu - the CUDA twins of gather, gather_nd, scatter_nd and scatter_add (indexing.c).
 *
 * The CPU setup (run for every backend) plans the shapes (index_plans.h's gather_plan and
 * nd_plan in f->state; scatter_add's state is its 0-based axis). Indices are 1-based
 * positions stored as floats (negatives from the end), read by index_plans.h's
 * nl_index_at, which follows nd_view.h's nl_read_index.
 *
 * Bad indices fail as on the CPU: a check kernel records the first bad entry in the CPU's
 * loop order (atomicMin of an order key), the host reads it back (a synchronous 8-byte
 * copy) and fails with nl_read_index's message. Gradients that several elements add into
 * one place (gather's and gather_nd's dx, scatter_add's and scatter_nd's forward with add)
 * use atomicAdd. scatter_nd without add lets the last column written win, as the CPU's
 * in-order loop does: each row of y records its highest writing column (atomicMax) first.
 * accum[i] adds into input i's gradient, else it is overwritten; prop[i] false leaves it
 * alone; the indices get zero gradients as on the CPU.
 */
#include "common.cuh"
extern "C" {
#include "nd_view.h"
#include "index_plans.h"
#include "labels.h"
}
#include <string.h>

/* ---- per-node device state ---- */

struct gx_state {
    nlc_buf flag;      /* an unsigned long long: the lowest bad order key, all ones = none */
    nlc_buf win;       /* scatter_nd: per row of y, 1 + the last column that writes it (0 = none) */
};

/* The node's flag, set to "none". NULL with an error. */
static unsigned long long *flag_arm(nl_func *f) {
    gx_state *st = nlc_state<gx_state>(f);
    return st ? nlc_flag_arm(st->flag, f->device_id) : nullptr;
}

/* Fails with the CPU's message for entry pos (0-based) of indices (a device array), read
 * for an axis (0-based) of size n. Always -1. */
static int index_fail(const float *idx, int64_t pos, int64_t n, int axis) {
    float v = 0.0f;
    NLC_CUDA(cudaMemcpy(&v, idx + pos, sizeof v, cudaMemcpyDeviceToHost));
    int64_t unused;
    if (nl_read_index(v, n, "indices", pos, axis, &unused)) return -1;
    return nl_error("'indices' entry %lld (%g) was read as invalid on the device", (long long)(pos + 1), (double)v);
}

/* ---- one axis of size n: indices (count) read in order (gather, scatter_add) ---- */

/* idx: (count) positions on an axis of size n; records the first bad one */
__global__ void k_check_axis(int64_t count, int64_t n, const float *__restrict__ idx, unsigned long long *bad) {
    NLC_LOOP(j, count) {
        int64_t q;
        if (!nl_index_at(idx[j], n, &q)) atomicMin(bad, (unsigned long long)j);
    }
}

/* Fails as the CPU does when an entry of idx (count, read in order) is bad for an axis
 * (0-based) of size n. */
static int check_axis(nl_func *f, const float *idx, int64_t count, int64_t n, int axis) {
    if (count <= 0) return 0;
    NLC_PTR(unsigned long long *, bad, flag_arm(f));
    k_check_axis<<<nlc_blocks(count), NLC_THREADS>>>(count, n, idx, bad);
    NLC_LAUNCHED(f->def->name);
    int64_t key = -1;
    if (nlc_flag_key(bad, &key)) return -1;
    return key < 0 ? 0 : index_fail(idx, key, n, axis);
}

/* ==== gather ============================================================================ */

/* x: (Bn, Mid, n, inner); idx: (Bn, I) checked positions; y: (Bn, Mid, I, inner) */
__global__ void k_gather_fwd(gather_plan p, const float *__restrict__ x, const float *__restrict__ idx,
                             float *__restrict__ y) {
    NLC_LOOP(e, p.Bn * p.Mid * p.I * p.inner) {
        const int64_t k = e % p.inner, t = e / p.inner;
        const int64_t i = t % p.I, bm = t / p.I, b = bm / p.Mid;
        int64_t src = 0;
        nl_index_at(idx[b * p.I + i], p.n, &src);
        y[e] = x[(bm * p.n + src) * p.inner + k];
    }
}

/* dy: (Bn, Mid, I, inner); idx: (Bn, I) checked positions; dx: (Bn, Mid, n, inner) +=
 * dy at the gathered positions (atomic: positions repeat) */
__global__ void k_gather_bwd(gather_plan p, const float *__restrict__ dy, const float *__restrict__ idx, float *dx) {
    NLC_LOOP(e, p.Bn * p.Mid * p.I * p.inner) {
        const int64_t k = e % p.inner, t = e / p.inner;
        const int64_t i = t % p.I, bm = t / p.I, b = bm / p.Mid;
        int64_t src = 0;
        nl_index_at(idx[b * p.I + i], p.n, &src);
        atomicAdd(dx + (bm * p.n + src) * p.inner + k, dy[e]);
    }
}

/* The CPU reads the indices (b, i) once per m: not at all when Mid = 0. */
static int gather_check(nl_func *f, const gather_plan *p, const float *idx) {
    return p->Mid > 0 ? check_axis(f, idx, p->Bn * p->I, p->n, p->axis) : 0;
}

static int gather_forward(nl_func *f) {
    const gather_plan *p = (const gather_plan *)f->state;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(const float *, idx, nlc_in(f, 1));
    NLC_PTR(float *, y, nlc_out(f, 0));
    if (gather_check(f, p, idx)) return -1;
    const int64_t total = nl_out(f, 0)->size;
    if (total == 0) return 0;
    k_gather_fwd<<<nlc_blocks(total), NLC_THREADS>>>(*p, x, idx, y);
    NLC_LAUNCHED("gather");
    return 0;
}

static int gather_backward(nl_func *f, const bool *prop, const bool *accum) {
    nl_no_grad_input(f, 1, prop, accum);   /* the indices */
    if (!prop[0]) return 0;
    const gather_plan *p = (const gather_plan *)f->state;
    NLC_PTR(const float *, idx, nlc_in(f, 1));
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
    if (nlc_clear_grad(f, dx, 0, accum[0])) return -1;
    if (gather_check(f, p, idx)) return -1;
    const int64_t total = nl_out(f, 0)->size;
    if (total == 0) return 0;
    k_gather_bwd<<<nlc_blocks(total), NLC_THREADS>>>(*p, dy, idx, dx);
    NLC_LAUNCHED("gather");
    return 0;
}

/* ==== gather_nd, scatter_nd: indices (M, cols) address the first M axes ================ */

/* idx: (M, cols); records the first bad entry in the CPU's order (column i, then axis m):
 * key i M + m */
__global__ void k_nd_check(nd_plan p, const float *__restrict__ idx, unsigned long long *bad) {
    NLC_LOOP(key, p.cols * p.M) {
        const int64_t i = key / p.M;
        const int m = (int)(key - i * p.M);
        int64_t q;
        if (!nl_index_at(idx[m * p.cols + i], p.shape[m], &q)) atomicMin(bad, (unsigned long long)key);
    }
}

/* Offset of column i's slice in the addressed array (checked indices). */
__device__ __forceinline__ int64_t nd_off(const nd_plan &p, const float *idx, int64_t i) {
    int64_t o = 0;
    for (int m = 0; m < p.M; m++) {
        int64_t k = 0;
        nl_index_at(idx[m * p.cols + i], p.shape[m], &k);
        o += k * p.stride[m];
    }
    return o;
}

/* Fails as the CPU does when an entry of idx is bad. */
static int nd_check(nl_func *f, const nd_plan *p, const float *idx) {
    if (p->cols <= 0) return 0;
    NLC_PTR(unsigned long long *, bad, flag_arm(f));
    k_nd_check<<<nlc_blocks(p->cols * p->M), NLC_THREADS>>>(*p, idx, bad);
    NLC_LAUNCHED(f->def->name);
    int64_t key = -1;
    if (nlc_flag_key(bad, &key)) return -1;
    if (key < 0) return 0;
    const int64_t i = key / p->M;
    const int m = (int)(key - i * p->M);
    return index_fail(idx, m * p->cols + i, p->shape[m], m);
}

/* x: the addressed array; idx: (M, cols) checked; y: (cols, slice) = x's slices (GATHER);
 * else x += y's slices at the positions (atomic: positions repeat) */
template <bool GATHER>
__global__ void k_nd_slices(nd_plan p, const float *__restrict__ idx, float *x, float *y) {
    NLC_LOOP(e, p.cols * p.slice) {
        const int64_t i = e / p.slice, k = e - i * p.slice;
        const int64_t o = nd_off(p, idx, i) + k;
        if (GATHER) y[e] = x[o];
        else atomicAdd(x + o, y[e]);
    }
}

static int gather_nd_forward(nl_func *f) {
    const nd_plan *p = (const nd_plan *)f->state;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(const float *, idx, nlc_in(f, 1));
    NLC_PTR(float *, y, nlc_out(f, 0));
    if (nd_check(f, p, idx)) return -1;
    const int64_t total = p->cols * p->slice;
    if (total == 0) return 0;
    k_nd_slices<true><<<nlc_blocks(total), NLC_THREADS>>>(*p, idx, (float *)x, y);
    NLC_LAUNCHED("gather_nd");
    return 0;
}

static int gather_nd_backward(nl_func *f, const bool *prop, const bool *accum) {
    nl_no_grad_input(f, 1, prop, accum);   /* the indices */
    if (!prop[0]) return 0;
    const nd_plan *p = (const nd_plan *)f->state;
    NLC_PTR(const float *, idx, nlc_in(f, 1));
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
    if (nlc_clear_grad(f, dx, 0, accum[0])) return -1;
    if (nd_check(f, p, idx)) return -1;
    const int64_t total = p->cols * p->slice;
    if (total == 0) return 0;
    k_nd_slices<false><<<nlc_blocks(total), NLC_THREADS>>>(*p, idx, dx, (float *)dy);
    NLC_LAUNCHED("gather_nd");
    return 0;
}

/* idx: (M, cols) checked; win: one word per row (slice elements) of y, zeroed beforehand;
 * win[row of column i] = max(win, i + 1) */
__global__ void k_sn_claim(nd_plan p, const float *__restrict__ idx, unsigned long long *win) {
    NLC_LOOP(i, p.cols) atomicMax(win + nd_off(p, idx, i) / p.slice, (unsigned long long)(i + 1));
}

/* data: (cols, slice); y: (rows, slice), ysize elements; y = data's slice of the last
 * column that writes each row, unchanged where none does */
__global__ void k_sn_write(int64_t ysize, int64_t slice, const unsigned long long *__restrict__ win,
                           const float *__restrict__ data, float *y) {
    NLC_LOOP(j, ysize) {
        const int64_t r = j / slice;
        const unsigned long long w = win[r];
        if (w) y[j] = data[(int64_t)(w - 1) * slice + (j - r * slice)];
    }
}

/* data: (cols, slice); dy: y's shape; dd: (cols, slice) = dy at the positions (+ dd when
 * ACC; no two columns share an element of dd) */
template <bool ACC>
__global__ void k_sn_bwd_data(nd_plan p, const float *__restrict__ idx, const float *__restrict__ dy, float *dd) {
    NLC_LOOP(e, p.cols * p.slice) {
        const int64_t i = e / p.slice, k = e - i * p.slice;
        const float g = dy[nd_off(p, idx, i) + k];
        dd[e] = ACC ? dd[e] + g : g;
    }
}

/* dy, dout: (rows, slice), ysize elements; dout = mask dy (+ dout when ACC), mask 0 on the
 * rows written, 1 elsewhere */
template <bool ACC>
__global__ void k_sn_bwd_out(int64_t ysize, int64_t slice, const unsigned long long *__restrict__ win,
                             const float *__restrict__ dy, float *dout) {
    NLC_LOOP(j, ysize) {
        const float g = (win[j / slice] ? 0.0f : 1.0f) * dy[j];
        dout[j] = ACC ? dout[j] + g : g;
    }
}

/* The rows (slice elements each) of y that columns write: win[r] = 1 + the last column
 * writing row r, 0 = none. Indices checked; slice > 0. NULL with an error. */
static const unsigned long long *sn_claim(nl_func *f, const nd_plan *p, const float *idx) {
    gx_state *st = nlc_state<gx_state>(f);
    if (!st) return nullptr;
    const int64_t rows = nl_out(f, 0)->size / p->slice;
    float *buf = st->win.get(2 * rows, f->device_id);
    if (!buf) return nullptr;
    unsigned long long *win = (unsigned long long *)(void *)buf;
    cudaError_t e = cudaMemsetAsync(win, 0, (size_t)(rows > 0 ? rows : 1) * sizeof *win);
    if (e != cudaSuccess) {
        nlc_cuda_err(e, "cudaMemsetAsync(rows)");
        return nullptr;
    }
    if (p->cols > 0) {
        k_sn_claim<<<nlc_blocks(p->cols), NLC_THREADS>>>(*p, idx, win);
        e = cudaGetLastError();
        if (e != cudaSuccess) {
            nlc_cuda_err(e, "scatter_nd");
            return nullptr;
        }
    }
    return win;
}

static int scatter_nd_forward(nl_func *f) {
    const nd_plan *p = (const nd_plan *)f->state;
    NLC_PTR(const float *, data, nlc_in(f, 0));
    NLC_PTR(const float *, idx, nlc_in(f, 1));
    NLC_PTR(float *, y, nlc_out(f, 0));
    const int64_t ysize = nl_out(f, 0)->size;
    if (f->in[2]) {
        NLC_PTR(const float *, out, nlc_in(f, 2));
        if (nlc_axpby(f->device_id, out, y, ysize, 1.0f, false)) return -1;
    } else if (nlc_fill(f->device_id, y, 0.0f, ysize)) {
        return -1;
    }
    if (nd_check(f, p, idx)) return -1;
    const int64_t total = p->cols * p->slice;
    if (total == 0) return 0;
    if (nl_arg_bool(f, SN_ADD)) {
        k_nd_slices<false><<<nlc_blocks(total), NLC_THREADS>>>(*p, idx, y, (float *)data);
    } else {
        NLC_PTR(const unsigned long long *, win, sn_claim(f, p, idx));
        k_sn_write<<<nlc_blocks(ysize), NLC_THREADS>>>(ysize, p->slice, win, data, y);
    }
    NLC_LAUNCHED("scatter_nd");
    return 0;
}

static int scatter_nd_backward(nl_func *f, const bool *prop, const bool *accum) {
    nl_no_grad_input(f, 1, prop, accum);   /* the indices */
    const nd_plan *p = (const nd_plan *)f->state;
    const bool do_out = f->in[2] != NULL && prop[2], add = nl_arg_bool(f, SN_ADD);
    if (!prop[0] && !do_out) return 0;
    NLC_PTR(const float *, idx, nlc_in(f, 1));
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    const int64_t ysize = nl_out(f, 0)->size, total = p->cols * p->slice;
    bool checked = false;
    if (prop[0]) {
        NLC_PTR(float *, dd, nlc_in_grad(f, 0, accum[0]));
        if (nd_check(f, p, idx)) return -1;
        checked = true;
        if (total > 0) {
            if (accum[0]) k_sn_bwd_data<true><<<nlc_blocks(total), NLC_THREADS>>>(*p, idx, dy, dd);
            else k_sn_bwd_data<false><<<nlc_blocks(total), NLC_THREADS>>>(*p, idx, dy, dd);
            NLC_LAUNCHED("scatter_nd");
        }
    }
    if (do_out) {
        NLC_PTR(float *, dout, nlc_in_grad(f, 2, accum[2]));
        if (add) return nlc_axpby(f->device_id, dy, dout, ysize, 1.0f, accum[2]);
        if (!checked && nd_check(f, p, idx)) return -1;
        if (ysize == 0) return 0;
        NLC_PTR(const unsigned long long *, win, sn_claim(f, p, idx));
        if (accum[2]) k_sn_bwd_out<true><<<nlc_blocks(ysize), NLC_THREADS>>>(ysize, p->slice, win, dy, dout);
        else k_sn_bwd_out<false><<<nlc_blocks(ysize), NLC_THREADS>>>(ysize, p->slice, win, dy, dout);
        NLC_LAUNCHED("scatter_nd");
    }
    return 0;
}

/* ==== scatter_add ======================================================================= */

struct sa_dims {
    int nd, a;                         /* axes; the scatter axis (0-based) */
    int64_t n;                         /* x0's size on axis a */
    int64_t count;                     /* indices' elements */
    int64_t ishape[NL_MAX_NDIM];       /* indices' shape */
    int64_t s0[NL_MAX_NDIM];           /* x0's (and y's) row-major strides */
    int64_t s1[NL_MAX_NDIM];           /* x1's row-major strides */
};

static sa_dims sa_get(nl_func *f) {
    const nl_var *x0 = nl_in(f, 0), *ix = nl_in(f, 1), *x1 = nl_in(f, 2);
    sa_dims d;
    memset(&d, 0, sizeof d);
    d.nd = x0->ndim;
    d.a = *(const int *)f->state;
    d.n = x0->shape[d.a];
    d.count = ix->size;
    for (int k = 0; k < d.nd; k++) d.ishape[k] = ix->shape[k];
    nl_row_strides(d.nd, x0->shape, d.s0);
    nl_row_strides(d.nd, x1->shape, d.s1);
    return d;
}

/* Entry j of indices (checked), at position p of indices' shape: *yo = the offset of p
 * with p[a] = indices[j] in x0's shape, *x1o = p's offset in x1's shape. */
__device__ __forceinline__ void sa_offsets(const sa_dims &d, const float *idx, int64_t j, int64_t *yo,
                                           int64_t *x1o) {
    int64_t q = 0;
    nl_index_at(idx[j], d.n, &q);
    int64_t o0 = 0, o1 = 0, r = j;
    for (int k = d.nd - 1; k >= 0; k--) {
        const int64_t pk = r % d.ishape[k];
        r /= d.ishape[k];
        o0 += (k == d.a ? q : pk) * d.s0[k];
        o1 += pk * d.s1[k];
    }
    *yo = o0;
    *x1o = o1;
}

/* idx: indices (count); x1: x1's shape; y: x0's shape, y[yo] += x1[x1o] (atomic: positions
 * repeat) */
__global__ void k_sa_fwd(sa_dims d, const float *__restrict__ idx, const float *__restrict__ x1, float *y) {
    NLC_LOOP(j, d.count) {
        int64_t yo, x1o;
        sa_offsets(d, idx, j, &yo, &x1o);
        atomicAdd(y + yo, x1[x1o]);
    }
}

/* idx: indices (count); dy: x0's shape; dx1: x1's shape, dx1[x1o] += dy[yo] (each x1o
 * once) */
__global__ void k_sa_bwd(sa_dims d, const float *__restrict__ idx, const float *__restrict__ dy, float *dx1) {
    NLC_LOOP(j, d.count) {
        int64_t yo, x1o;
        sa_offsets(d, idx, j, &yo, &x1o);
        dx1[x1o] += dy[yo];
    }
}

static int scatter_add_forward(nl_func *f) {
    const sa_dims d = sa_get(f);
    NLC_PTR(const float *, x0, nlc_in(f, 0));
    NLC_PTR(const float *, idx, nlc_in(f, 1));
    NLC_PTR(const float *, x1, nlc_in(f, 2));
    NLC_PTR(float *, y, nlc_out(f, 0));
    if (nlc_axpby(f->device_id, x0, y, nl_out(f, 0)->size, 1.0f, false)) return -1;
    if (check_axis(f, idx, d.count, d.n, d.a)) return -1;
    if (d.count == 0) return 0;
    k_sa_fwd<<<nlc_blocks(d.count), NLC_THREADS>>>(d, idx, x1, y);
    NLC_LAUNCHED("scatter_add");
    return 0;
}

static int scatter_add_backward(nl_func *f, const bool *prop, const bool *accum) {
    nl_no_grad_input(f, 1, prop, accum);   /* the indices */
    if (!prop[0] && !prop[2]) return 0;
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    if (prop[0]) {
        NLC_PTR(float *, dx0, nlc_in_grad(f, 0, accum[0]));
        if (nlc_axpby(f->device_id, dy, dx0, nl_in(f, 0)->size, 1.0f, accum[0])) return -1;
    }
    if (prop[2]) {
        const sa_dims d = sa_get(f);
        NLC_PTR(const float *, idx, nlc_in(f, 1));
        NLC_PTR(float *, dx1, nlc_in_grad(f, 2, accum[2]));
        if (nlc_clear_grad(f, dx1, 2, accum[2])) return -1;
        if (check_axis(f, idx, d.count, d.n, d.a)) return -1;
        if (d.count == 0) return 0;
        k_sa_bwd<<<nlc_blocks(d.count), NLC_THREADS>>>(d, idx, dy, dx1);
        NLC_LAUNCHED("scatter_add");
    }
    return 0;
}

/* ---- registration ---- */

int nlc_register_gather(void) {
    if (nlc_register("gather", "cuda", gather_forward, gather_backward)) return -1;
    if (nlc_register("gather_nd", "cuda", gather_nd_forward, gather_nd_backward)) return -1;
    if (nlc_register("scatter_nd", "cuda", scatter_nd_forward, scatter_nd_backward)) return -1;
    if (nlc_register("scatter_add", "cuda", scatter_add_forward, scatter_add_backward)) return -1;
    return 0;
}
