/*
 * views.cu - the CUDA twins of the array functions that are strided views (array_ops.c):
 * transpose, broadcast, broadcast_to, tile, flip, matrix_diag_part (one view),
 * concatenate and stack (one view per input into the output), split (one per output into
 * x) and matrix_diag (x scattered onto a zeroed diagonal).
 *
 * The views are not computed here: the CPU setup builds them (nd_view.h's view_plan and
 * multi_plan, already simplified) and the CPU specs test them; these kernels only walk a
 * view on the device, one thread per element j of the view in row-major order:
 *   gather   dst[j] (+)= src[off(j)]
 *   scatter  dst[off(j)] (+)= src[j]   (atomicAdd where two j may share an offset)
 * with off(j) = base + sum_k i_k(j) * stride[k].
 */
#include "common.cuh"
extern "C" {
#include "nd_view.h"
}

/* v: the view (shape, strides, base); total = prod(v.shape); src/dst as above */
template <bool SCATTER, bool ADD, bool ATOMIC>
__global__ void k_view(nl_view v, int64_t total, const float *__restrict__ src, float *dst) {
    NLC_LOOP(j, total) {
        int64_t off = v.base, r = j;
        for (int k = v.nd - 1; k >= 0; k--) {
            const int64_t n = v.shape[k];
            const int64_t q = r / n;
            off += (r - q * n) * v.stride[k];
            r = q;
        }
        if (!SCATTER) dst[j] = ADD ? dst[j] + src[off] : src[off];
        else if (ATOMIC) atomicAdd(dst + off, src[j]);
        else dst[off] = ADD ? dst[off] + src[j] : src[j];
    }
}

/* Runs one view; `shared` says that two elements of the view may have the same offset
 * (a broadcast or tile read backwards), so a scatter that adds must add atomically. */
static int view_run(const nl_view &v, const float *src, float *dst, bool scatter, bool add, bool shared) {
    int64_t total = 1;
    for (int k = 0; k < v.nd; k++) total *= v.shape[k];
    if (total == 0) return 0;
    const unsigned b = nlc_blocks(total);
    if (!scatter) {
        if (add) k_view<false, true, false><<<b, NLC_THREADS>>>(v, total, src, dst);
        else k_view<false, false, false><<<b, NLC_THREADS>>>(v, total, src, dst);
    } else if (add && shared) {
        k_view<true, true, true><<<b, NLC_THREADS>>>(v, total, src, dst);
    } else if (add) {
        k_view<true, true, false><<<b, NLC_THREADS>>>(v, total, src, dst);
    } else {
        k_view<true, false, false><<<b, NLC_THREADS>>>(v, total, src, dst);
    }
    NLC_LAUNCHED("view");
    return 0;
}

/* ---- one view: y = src read through the view; dsrc = dy scattered back ---- */

static int view_forward(nl_func *f) {
    const view_plan *p = (const view_plan *)f->state;
    NLC_PTR(const float *, x, nlc_in(f, p->src));
    NLC_PTR(float *, y, nlc_out(f, 0));
    return view_run(p->view, x, y, false, false, false);
}

static int view_backward(nl_func *f, const bool *prop, const bool *accum) {
    const view_plan *p = (const view_plan *)f->state;
    for (int i = 0; i < f->n_in; i++) {
        if (!prop[i]) continue;
        NLC_PTR(float *, dx, nlc_in_grad(f, i, accum[i]));
        if (i != p->src) {                       /* broadcast_to's shape-only input */
            if (nlc_clear_grad(f, dx, i, accum[i])) return -1;
            continue;
        }
        NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
        if (p->injective && !accum[i]) {         /* a permutation: plain writes */
            if (view_run(p->view, dy, dx, true, false, false)) return -1;
        } else {
            if (nlc_clear_grad(f, dx, i, accum[i])) return -1;
            if (view_run(p->view, dy, dx, true, true, !p->injective)) return -1;
        }
    }
    return 0;
}

/* ---- concatenate, stack: x_i written into its view of y; dx_i = dy read through it ---- */

static int join_forward(nl_func *f) {
    const multi_plan *p = (const multi_plan *)f->state;
    NLC_PTR(float *, y, nlc_out(f, 0));
    for (int i = 0; i < p->n; i++) {
        NLC_PTR(const float *, x, nlc_in(f, i));
        if (view_run(p->view[i], x, y, true, false, false)) return -1;
    }
    return 0;
}

static int join_backward(nl_func *f, const bool *prop, const bool *accum) {
    const multi_plan *p = (const multi_plan *)f->state;
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    for (int i = 0; i < p->n; i++) {
        if (!prop[i]) continue;
        NLC_PTR(float *, dx, nlc_in_grad(f, i, accum[i]));
        if (view_run(p->view[i], dy, dx, false, accum[i], false)) return -1;
    }
    return 0;
}

/* ---- split: y_o = x read through view o; the views tile dx exactly ---- */

static int split_forward(nl_func *f) {
    const multi_plan *p = (const multi_plan *)f->state;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    for (int o = 0; o < p->n; o++) {
        NLC_PTR(float *, y, nlc_out(f, o));
        if (view_run(p->view[o], x, y, false, false, false)) return -1;
    }
    return 0;
}

static int split_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    const multi_plan *p = (const multi_plan *)f->state;
    NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
    for (int o = 0; o < p->n; o++) {
        NLC_PTR(const float *, dy, nlc_out_grad(f, o));
        if (view_run(p->view[o], dy, dx, true, accum[0], false)) return -1;
    }
    return 0;
}

/* ---- matrix_diag: x (..., n) -> y (..., n, n) zero off the diagonal ---- */

static int matrix_diag_forward(nl_func *f) {
    const view_plan *p = (const view_plan *)f->state;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(float *, y, nlc_out(f, 0));
    if (nlc_fill(f->device_id, y, 0.0f, nl_out(f, 0)->size)) return -1;
    return view_run(p->view, x, y, true, false, false);
}

static int matrix_diag_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    const view_plan *p = (const view_plan *)f->state;
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
    return view_run(p->view, dy, dx, false, accum[0], false);
}

/* ---- registration ---- */

int nlc_register_views(void) {
    static const char *one_view[] = {"transpose", "broadcast", "broadcast_to", "tile", "flip",
                                     "matrix_diag_part"};
    for (const char *name : one_view)
        if (nlc_register(name, "cuda", view_forward, view_backward)) return -1;
    if (nlc_register("concatenate", "cuda", join_forward, join_backward)) return -1;
    if (nlc_register("stack", "cuda", join_forward, join_backward)) return -1;
    if (nlc_register("split", "cuda", split_forward, split_backward)) return -1;
    if (nlc_register("matrix_diag", "cuda", matrix_diag_forward, matrix_diag_backward)) return -1;
    return 0;
}
