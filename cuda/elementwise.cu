/*
 * elementwise.cu - CUDA kernels for the element-wise functions: every unary, scalar and
 * binary (broadcasting) function of arithmetic.c, activation.c, math.c and logic.c, plus
 * selu, celu, prelu, add_n, mul_n, where, squared_error, reshape and slice.
 *
 * The math is not written here: the kernels call the same nl_<op>_fwd / nl_<op>_bwd*
 * functions of core/functions/elementwise_math.h that the CPU kernels call (host/device
 * inline bodies), so the CPU specs test the math the GPU runs. Adding a function of an
 * existing family is one line: NLC_UNARY(op) / NLC_BINARY(op) / ..._NOGRAD(op) in the
 * list below, plus its entry in the registration table.
 *
 * Which data a backward reads comes from the CPU definition (def->grad_in_data and
 * grad_out_data), the same bits that tell the graph which buffers to keep.
 */
#include "common.cuh"
#include <string.h>

/* ---- unary: y = op(x, v); dx (+)= op_bwd(x, y, dy, v); v = the first argument or 0 ---- */

#define NLC_UNARY(OP)                                                                        \
    struct u_##OP {                                                                          \
        static __device__ __forceinline__ float fwd(float x, float v) { return nl_##OP##_fwd(x, v); } \
        static __device__ __forceinline__ float bwd(float x, float y, float dy, float v) {   \
            return nl_##OP##_bwd(x, y, dy, v);                                               \
        }                                                                                    \
    };
#define NLC_UNARY_NOGRAD(OP)                                                                 \
    struct u_##OP {                                                                          \
        static __device__ __forceinline__ float fwd(float x, float v) { return nl_##OP##_fwd(x, v); } \
        static __device__ __forceinline__ float bwd(float, float, float, float) { return 0.0f; } \
    };
#define NLC_BINARY(OP)                                                                       \
    struct b_##OP {                                                                          \
        static __device__ __forceinline__ float fwd(float a, float b) { return nl_##OP##_fwd(a, b); } \
        static __device__ __forceinline__ float bwd_a(float a, float b, float y, float dy) { \
            return nl_##OP##_bwd_a(a, b, y, dy);                                             \
        }                                                                                    \
        static __device__ __forceinline__ float bwd_b(float a, float b, float y, float dy) { \
            return nl_##OP##_bwd_b(a, b, y, dy);                                             \
        }                                                                                    \
    };
#define NLC_BINARY_NOGRAD(OP)                                                                \
    struct b_##OP {                                                                          \
        static __device__ __forceinline__ float fwd(float a, float b) { return nl_##OP##_fwd(a, b); } \
        static __device__ __forceinline__ float bwd_a(float, float, float, float) { return 0.0f; } \
        static __device__ __forceinline__ float bwd_b(float, float, float, float) { return 0.0f; } \
    };

/* arithmetic.c */
NLC_UNARY(add_scalar) NLC_UNARY(mul_scalar) NLC_UNARY(r_sub_scalar) NLC_UNARY(r_div_scalar)
NLC_UNARY(pow_scalar) NLC_UNARY(r_pow_scalar) NLC_UNARY(maximum_scalar) NLC_UNARY(minimum_scalar)
NLC_BINARY(add2) NLC_BINARY(sub2) NLC_BINARY(mul2) NLC_BINARY(div2) NLC_BINARY(pow2)
NLC_BINARY(maximum2) NLC_BINARY(minimum2)
/* activation.c */
NLC_UNARY(identity) NLC_UNARY(tanh) NLC_UNARY(sigmoid) NLC_UNARY(relu) NLC_UNARY(leaky_relu)
NLC_UNARY(elu) NLC_UNARY(gelu) NLC_UNARY(swish) NLC_UNARY(mish) NLC_UNARY(softplus)
NLC_UNARY(softsign) NLC_UNARY(relu6) NLC_UNARY(hard_sigmoid) NLC_UNARY(hard_tanh)
NLC_UNARY(log_sigmoid)
/* math.c */
NLC_UNARY(sign) NLC_UNARY(abs) NLC_UNARY(exp) NLC_UNARY(log) NLC_UNARY(sin) NLC_UNARY(cos)
NLC_UNARY(tan) NLC_UNARY(asin) NLC_UNARY(acos) NLC_UNARY(atan) NLC_UNARY(sinh) NLC_UNARY(cosh)
NLC_UNARY(round) NLC_UNARY(ceil) NLC_UNARY(floor) NLC_UNARY(erf)
NLC_BINARY(atan2)
/* logic.c */
NLC_BINARY_NOGRAD(equal) NLC_BINARY_NOGRAD(not_equal) NLC_BINARY_NOGRAD(greater)
NLC_BINARY_NOGRAD(greater_equal) NLC_BINARY_NOGRAD(less) NLC_BINARY_NOGRAD(less_equal)
NLC_BINARY_NOGRAD(logical_and) NLC_BINARY_NOGRAD(logical_or) NLC_BINARY_NOGRAD(logical_xor)
NLC_UNARY_NOGRAD(equal_scalar) NLC_UNARY_NOGRAD(not_equal_scalar) NLC_UNARY_NOGRAD(greater_scalar)
NLC_UNARY_NOGRAD(greater_equal_scalar) NLC_UNARY_NOGRAD(less_scalar) NLC_UNARY_NOGRAD(less_equal_scalar)
NLC_UNARY_NOGRAD(logical_and_scalar) NLC_UNARY_NOGRAD(logical_or_scalar)
NLC_UNARY_NOGRAD(logical_xor_scalar) NLC_UNARY_NOGRAD(logical_not) NLC_UNARY_NOGRAD(isnan)
NLC_UNARY_NOGRAD(isinf)
NLC_UNARY(reset_nan) NLC_UNARY(reset_inf)

/* ---- unary kernels ---- */

template <class Op> __global__ void k_unary_fwd(int64_t n, const float *__restrict__ x, float *__restrict__ y, float v) {
    NLC_LOOP(i, n) y[i] = Op::fwd(x[i], v);
}

template <class Op, bool ACC>
__global__ void k_unary_bwd(int64_t n, const float *x, const float *y, const float *__restrict__ dy,
                            float *dx, float v) {
    NLC_LOOP(i, n) {
        float g = Op::bwd(x ? x[i] : 0.0f, y ? y[i] : 0.0f, dy[i], v);
        dx[i] = ACC ? dx[i] + g : g;
    }
}

static float arg0(nl_func *f) { return f->def->n_args ? (float)nl_arg_float(f, 0) : 0.0f; }

template <class Op> static int unary_forward(nl_func *f) {
    const int64_t n = nl_in(f, 0)->size;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(float *, y, nlc_out(f, 0));
    if (n == 0) return 0;
    k_unary_fwd<Op><<<nlc_blocks(n), NLC_THREADS>>>(n, x, y, arg0(f));
    NLC_LAUNCHED(f->def->name);
    return 0;
}

template <class Op> static int unary_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    const int64_t n = nl_in(f, 0)->size;
    const float *x = nullptr, *y = nullptr;
    if (f->def->grad_in_data & 1u) { x = nlc_in(f, 0); if (!x) return -1; }
    if (f->def->grad_out_data & 1u) { y = nlc_out_r(f, 0); if (!y) return -1; }
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
    if (n == 0) return 0;
    if (accum[0]) k_unary_bwd<Op, true><<<nlc_blocks(n), NLC_THREADS>>>(n, x, y, dy, dx, arg0(f));
    else k_unary_bwd<Op, false><<<nlc_blocks(n), NLC_THREADS>>>(n, x, y, dy, dx, arg0(f));
    NLC_LAUNCHED(f->def->name);
    return 0;
}

/* Backward of a function without a gradient: zeros into every propagated input that does
 * not accumulate (logic.c's rule). */
static int nograd_backward(nl_func *f, const bool *prop, const bool *accum) {
    for (int i = 0; i < f->n_in; i++) {
        if (!prop[i] || accum[i]) continue;
        NLC_PTR(float *, dx, nlc_in_grad(f, i, false));
        if (nlc_fill(f->device_id, dx, 0.0f, nl_in(f, i)->size)) return -1;
    }
    return 0;
}

/* ---- binary kernels with numpy broadcasting (nl_bcast from arithmetic.c) ---- */

__device__ __forceinline__ void bc_index(const nl_bcast &bc, int64_t iy, int64_t &ia, int64_t &ib) {
    if (bc.kind == 1) { ia = iy; ib = iy; return; }
    if (bc.kind == 2) { ia = iy; ib = 0; return; }
    if (bc.kind == 3) { ia = 0; ib = iy; return; }
    ia = 0; ib = 0;
    int64_t r = iy;
    for (int d = bc.ndim - 1; d >= 0; d--) {
        const int64_t s = bc.shape[d], q = r / s, idx = r - q * s;
        r = q;
        ia += idx * bc.sa[d];
        ib += idx * bc.sb[d];
    }
}

template <class Op> __global__ void k_binary_fwd(nl_bcast bc, const float *a, const float *b, float *y) {
    NLC_LOOP(iy, bc.size) {
        int64_t ia, ib;
        bc_index(bc, iy, ia, ib);
        y[iy] = Op::fwd(a[ia], b[ib]);
    }
}

/* WHICH 0: gradient of a, 1: of b. MODE 0: write g at iy, 1: add g at iy, 2: write g into
 * a temporary of the output's size (reduced afterwards over the broadcast axes). */
template <class Op, int WHICH, int MODE>
__global__ void k_binary_bwd(nl_bcast bc, const float *a, const float *b, const float *y,
                             const float *__restrict__ dy, float *out) {
    NLC_LOOP(iy, bc.size) {
        int64_t ia, ib;
        bc_index(bc, iy, ia, ib);
        const float av = a ? a[ia] : 0.0f, bv = b ? b[ib] : 0.0f, yv = y ? y[iy] : 0.0f;
        const float g = WHICH == 0 ? Op::bwd_a(av, bv, yv, dy[iy]) : Op::bwd_b(av, bv, yv, dy[iy]);
        if (MODE == 1) out[iy] += g;
        else out[iy] = g;
    }
}

template <class Op> static int binary_forward(nl_func *f) {
    nl_bcast bc;
    if (nl_bcast_init(&bc, nl_in(f, 0), nl_in(f, 1))) return -1;
    NLC_PTR(const float *, a, nlc_in(f, 0));
    NLC_PTR(const float *, b, nlc_in(f, 1));
    NLC_PTR(float *, y, nlc_out(f, 0));
    if (bc.size == 0) return 0;
    k_binary_fwd<Op><<<nlc_blocks(bc.size), NLC_THREADS>>>(bc, a, b, y);
    NLC_LAUNCHED(f->def->name);
    return 0;
}

template <class Op, int WHICH>
static int binary_grad(nl_func *f, const nl_bcast &bc, const float *a, const float *b, const float *y,
                       const float *dy, bool acc) {
    const nl_var *x = nl_in(f, WHICH);
    NLC_PTR(float *, dx, nlc_in_grad(f, WHICH, acc));
    const int dev = f->device_id;
    if (bc.size == 0) return acc ? 0 : nlc_fill(dev, dx, 0.0f, x->size);
    const unsigned nb = nlc_blocks(bc.size);
    if (x->size == bc.size) {            /* not broadcast: one gradient per output element */
        if (acc) k_binary_bwd<Op, WHICH, 1><<<nb, NLC_THREADS>>>(bc, a, b, y, dy, dx);
        else k_binary_bwd<Op, WHICH, 0><<<nb, NLC_THREADS>>>(bc, a, b, y, dy, dx);
        NLC_LAUNCHED(f->def->name);
        return 0;
    }
    /* broadcast: per-output gradients, summed over the axes where x has size 1 */
    nlc_buf tmp;
    NLC_PTR(float *, g, tmp.get(bc.size, dev));
    k_binary_bwd<Op, WHICH, 2><<<nb, NLC_THREADS>>>(bc, a, b, y, dy, g);
    NLC_LAUNCHED(f->def->name);
    bool red[NL_MAX_NDIM];
    for (int d = 0; d < bc.ndim; d++) red[d] = (WHICH == 0 ? bc.sa[d] : bc.sb[d]) == 0 && bc.shape[d] != 1;
    return nlc_reduce(dev, g, bc.ndim, bc.shape, red, dx, 1.0f, acc);
}

template <class Op> static int binary_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0] && !prop[1]) return 0;
    nl_bcast bc;
    if (nl_bcast_init(&bc, nl_in(f, 0), nl_in(f, 1))) return -1;
    const float *a = nullptr, *b = nullptr, *y = nullptr;
    if (f->def->grad_in_data & 1u) { a = nlc_in(f, 0); if (!a) return -1; }
    if (f->def->grad_in_data & 2u) { b = nlc_in(f, 1); if (!b) return -1; }
    if (f->def->grad_out_data & 1u) { y = nlc_out_r(f, 0); if (!y) return -1; }
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    /* the same variable on both sides (x * x): the second gradient adds to the first */
    const bool same = nl_in(f, 0)->grad == nl_in(f, 1)->grad;
    if (prop[0] && binary_grad<Op, 0>(f, bc, a, b, y, dy, accum[0])) return -1;
    if (prop[1] && binary_grad<Op, 1>(f, bc, a, b, y, dy, accum[1] || (same && prop[0]))) return -1;
    return 0;
}

/* ---- selu (two scalars) ---- */

template <bool ACC> __global__ void k_selu_bwd(int64_t n, const float *x, const float *dy, float *dx, float s, float a) {
    NLC_LOOP(i, n) {
        float g = nl_selu_bwd(x[i], dy[i], s, a);
        dx[i] = ACC ? dx[i] + g : g;
    }
}
__global__ void k_selu_fwd(int64_t n, const float *x, float *y, float s, float a) {
    NLC_LOOP(i, n) y[i] = nl_selu_fwd(x[i], s, a);
}

static int selu_forward(nl_func *f) {
    const int64_t n = nl_in(f, 0)->size;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(float *, y, nlc_out(f, 0));
    if (n == 0) return 0;
    k_selu_fwd<<<nlc_blocks(n), NLC_THREADS>>>(n, x, y, (float)nl_arg_float(f, 0), (float)nl_arg_float(f, 1));
    NLC_LAUNCHED("selu");
    return 0;
}

static int selu_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    const int64_t n = nl_in(f, 0)->size;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
    if (n == 0) return 0;
    const float s = (float)nl_arg_float(f, 0), a = (float)nl_arg_float(f, 1);
    if (accum[0]) k_selu_bwd<true><<<nlc_blocks(n), NLC_THREADS>>>(n, x, dy, dx, s, a);
    else k_selu_bwd<false><<<nlc_blocks(n), NLC_THREADS>>>(n, x, dy, dx, s, a);
    NLC_LAUNCHED("selu");
    return 0;
}

/* ---- celu: x (outer, inner) -> y (outer, 2, inner) around the axis ---- */

static int celu_dims(nl_func *f, int64_t *outer, int64_t *inner) {
    const nl_var *x = nl_in(f, 0);
    int a;
    if (nl_norm_axis("axis", nl_arg_int(f, 1), x->ndim, &a)) return -1;
    *outer = 1; *inner = 1;
    for (int d = 0; d < a; d++) *outer *= x->shape[d];
    for (int d = a; d < x->ndim; d++) *inner *= x->shape[d];
    return 0;
}

__global__ void k_celu_fwd(int64_t outer, int64_t inner, const float *x, float *y, float a) {
    NLC_LOOP(k, outer * inner) {
        const int64_t o = k / inner, i = k - o * inner;
        y[2 * o * inner + i] = nl_celu_pos(x[k], a);
        y[(2 * o + 1) * inner + i] = nl_celu_neg(x[k], a);
    }
}
template <bool ACC> __global__ void k_celu_bwd(int64_t outer, int64_t inner, const float *x, const float *dy, float *dx, float a) {
    NLC_LOOP(k, outer * inner) {
        const int64_t o = k / inner, i = k - o * inner;
        float g = nl_celu_bwd(x[k], a, dy[2 * o * inner + i], dy[(2 * o + 1) * inner + i]);
        dx[k] = ACC ? dx[k] + g : g;
    }
}

static int celu_forward(nl_func *f) {
    int64_t outer, inner;
    if (celu_dims(f, &outer, &inner)) return -1;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(float *, y, nlc_out(f, 0));
    if (outer * inner == 0) return 0;
    k_celu_fwd<<<nlc_blocks(outer * inner), NLC_THREADS>>>(outer, inner, x, y, (float)nl_arg_float(f, 0));
    NLC_LAUNCHED("celu");
    return 0;
}

static int celu_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    int64_t outer, inner;
    if (celu_dims(f, &outer, &inner)) return -1;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
    const int64_t n = outer * inner;
    if (n == 0) return 0;
    const float a = (float)nl_arg_float(f, 0);
    if (accum[0]) k_celu_bwd<true><<<nlc_blocks(n), NLC_THREADS>>>(outer, inner, x, dy, dx, a);
    else k_celu_bwd<false><<<nlc_blocks(n), NLC_THREADS>>>(outer, inner, x, dy, dx, a);
    NLC_LAUNCHED("celu");
    return 0;
}

/* ---- prelu: x0 (outer, C, inner), slope x1 (C) or one value ---- */

static int prelu_dims(nl_func *f, int64_t *outer, int64_t *C, int64_t *inner) {
    const nl_var *x = nl_in(f, 0), *w = nl_in(f, 1);
    if (w->size == 1) { *outer = 1; *C = 1; *inner = x->size; return 0; }
    int a;
    if (nl_norm_axis("base_axis", nl_arg_int(f, 0), x->ndim, &a)) return -1;
    *outer = 1; *inner = 1;
    for (int d = 0; d < a; d++) *outer *= x->shape[d];
    for (int d = a + 1; d < x->ndim; d++) *inner *= x->shape[d];
    *C = x->shape[a];
    return 0;
}

__global__ void k_prelu_fwd(int64_t n, int64_t C, int64_t inner, const float *x, const float *w, float *y) {
    NLC_LOOP(k, n) y[k] = nl_prelu_fwd(x[k], w[(k / inner) % C]);
}
template <bool ACC> __global__ void k_prelu_bwd_x(int64_t n, int64_t C, int64_t inner, const float *x, const float *w,
                                                  const float *dy, float *dx) {
    NLC_LOOP(k, n) {
        float g = nl_prelu_bwd_x(x[k], w[(k / inner) % C], dy[k]);
        dx[k] = ACC ? dx[k] + g : g;
    }
}
__global__ void k_prelu_bwd_w(int64_t n, const float *x, const float *dy, float *g) {
    NLC_LOOP(k, n) g[k] = nl_prelu_bwd_w(x[k], dy[k]);
}

static int prelu_forward(nl_func *f) {
    int64_t outer, C, inner;
    if (prelu_dims(f, &outer, &C, &inner)) return -1;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(const float *, w, nlc_in(f, 1));
    NLC_PTR(float *, y, nlc_out(f, 0));
    const int64_t n = outer * C * inner;
    if (n == 0) return 0;
    k_prelu_fwd<<<nlc_blocks(n), NLC_THREADS>>>(n, C, inner, x, w, y);
    NLC_LAUNCHED("prelu");
    return 0;
}

static int prelu_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0] && !prop[1]) return 0;
    int64_t outer, C, inner;
    if (prelu_dims(f, &outer, &C, &inner)) return -1;
    const int dev = f->device_id;
    const int64_t n = outer * C * inner;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(const float *, w, nlc_in(f, 1));
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    if (prop[0]) {
        NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
        if (n > 0) {
            if (accum[0]) k_prelu_bwd_x<true><<<nlc_blocks(n), NLC_THREADS>>>(n, C, inner, x, w, dy, dx);
            else k_prelu_bwd_x<false><<<nlc_blocks(n), NLC_THREADS>>>(n, C, inner, x, w, dy, dx);
            NLC_LAUNCHED("prelu");
        }
    }
    if (prop[1]) {
        const bool acc = accum[1] || (prop[0] && nl_in(f, 0)->grad == nl_in(f, 1)->grad);
        NLC_PTR(float *, dw, nlc_in_grad(f, 1, acc));
        if (n == 0) return acc ? 0 : nlc_fill(dev, dw, 0.0f, C);
        nlc_buf tmp;
        NLC_PTR(float *, g, tmp.get(n, dev));
        k_prelu_bwd_w<<<nlc_blocks(n), NLC_THREADS>>>(n, x, dy, g);
        NLC_LAUNCHED("prelu");
        const int64_t shape[3] = {outer, C, inner};
        const bool red[3] = {true, false, true};
        if (nlc_reduce(dev, g, 3, shape, red, dw, 1.0f, acc)) return -1;
    }
    return 0;
}

/* ---- add_n, mul_n: inputs of one shape ---- */

struct ptr_list { const float *p[NL_MAX_INPUTS]; };

__global__ void k_add_n(int64_t n, int m, ptr_list xs, float *y) {
    NLC_LOOP(j, n) {
        float s = xs.p[0][j];
        for (int i = 1; i < m; i++) s = nl_add2_fwd(s, xs.p[i][j]);
        y[j] = s;
    }
}
__global__ void k_mul_n(int64_t n, int m, ptr_list xs, float *y) {
    NLC_LOOP(j, n) {
        float s = xs.p[0][j];
        for (int i = 1; i < m; i++) s = nl_mul2_fwd(s, xs.p[i][j]);
        y[j] = s;
    }
}
template <bool ACC> __global__ void k_mul_n_bwd(int64_t n, int m, int skip, ptr_list xs, const float *dy, float *dx) {
    NLC_LOOP(j, n) {
        float g = dy[j];
        for (int k = 0; k < m; k++)
            if (k != skip) g *= xs.p[k][j];
        dx[j] = ACC ? dx[j] + g : g;
    }
}

static bool grad_written_before(nl_func *f, const bool *prop, int i) {
    for (int k = 0; k < i; k++)
        if (prop[k] && nl_in(f, k)->grad == nl_in(f, i)->grad) return true;
    return false;
}

static int nary_inputs(nl_func *f, ptr_list *xs) {
    if (f->n_in > NL_MAX_INPUTS) return nl_error("%d inputs (at most %d)", f->n_in, NL_MAX_INPUTS);
    for (int i = 0; i < f->n_in; i++) {
        xs->p[i] = nlc_in(f, i);
        if (!xs->p[i]) return -1;
    }
    return 0;
}

static int add_n_forward(nl_func *f) {
    ptr_list xs;
    if (nary_inputs(f, &xs)) return -1;
    NLC_PTR(float *, y, nlc_out(f, 0));
    const int64_t n = nl_in(f, 0)->size;
    if (n == 0) return 0;
    k_add_n<<<nlc_blocks(n), NLC_THREADS>>>(n, f->n_in, xs, y);
    NLC_LAUNCHED("add_n");
    return 0;
}

static int add_n_backward(nl_func *f, const bool *prop, const bool *accum) {
    const int64_t n = nl_in(f, 0)->size;
    const float *dy = nullptr;
    for (int i = 0; i < f->n_in; i++) {
        if (!prop[i]) continue;
        if (!dy) { dy = nlc_out_grad(f, 0); if (!dy) return -1; }
        const bool acc = accum[i] || grad_written_before(f, prop, i);
        NLC_PTR(float *, dx, nlc_in_grad(f, i, acc));
        if (nlc_axpby(f->device_id, dy, dx, n, 1.0f, acc)) return -1;
    }
    return 0;
}

static int mul_n_forward(nl_func *f) {
    ptr_list xs;
    if (nary_inputs(f, &xs)) return -1;
    NLC_PTR(float *, y, nlc_out(f, 0));
    const int64_t n = nl_in(f, 0)->size;
    if (n == 0) return 0;
    k_mul_n<<<nlc_blocks(n), NLC_THREADS>>>(n, f->n_in, xs, y);
    NLC_LAUNCHED("mul_n");
    return 0;
}

static int mul_n_backward(nl_func *f, const bool *prop, const bool *accum) {
    bool any = false;
    for (int i = 0; i < f->n_in; i++) any |= prop[i];
    if (!any) return 0;
    ptr_list xs;
    if (nary_inputs(f, &xs)) return -1;
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    const int64_t n = nl_in(f, 0)->size;
    for (int i = 0; i < f->n_in; i++) {
        if (!prop[i]) continue;
        const bool acc = accum[i] || grad_written_before(f, prop, i);
        NLC_PTR(float *, dx, nlc_in_grad(f, i, acc));
        if (n == 0) continue;
        if (acc) k_mul_n_bwd<true><<<nlc_blocks(n), NLC_THREADS>>>(n, f->n_in, i, xs, dy, dx);
        else k_mul_n_bwd<false><<<nlc_blocks(n), NLC_THREADS>>>(n, f->n_in, i, xs, dy, dx);
        NLC_LAUNCHED("mul_n");
    }
    return 0;
}

/* ---- where: condition (nc), x_true / x_false (nc, inner) ---- */

__global__ void k_where_fwd(int64_t n, int64_t inner, const float *c, const float *t, const float *e, float *y) {
    NLC_LOOP(k, n) y[k] = nl_where_fwd(c[k / inner], t[k], e[k]);
}
template <bool ACC> __global__ void k_where_bwd(int64_t n, int64_t inner, bool take_true, const float *c,
                                                const float *dy, float *dx) {
    NLC_LOOP(k, n) {
        float g = (nl_where_cond(c[k / inner]) == take_true) ? dy[k] : 0.0f;
        dx[k] = ACC ? dx[k] + g : g;
    }
}

static int64_t where_inner(nl_func *f) {
    int64_t cs = nl_in(f, 0)->size;
    return cs ? nl_in(f, 1)->size / cs : 0;
}

static int where_forward(nl_func *f) {
    NLC_PTR(const float *, c, nlc_in(f, 0));
    NLC_PTR(const float *, t, nlc_in(f, 1));
    NLC_PTR(const float *, e, nlc_in(f, 2));
    NLC_PTR(float *, y, nlc_out(f, 0));
    const int64_t n = nl_in(f, 1)->size, inner = where_inner(f);
    if (n == 0 || inner == 0) return 0;
    k_where_fwd<<<nlc_blocks(n), NLC_THREADS>>>(n, inner, c, t, e, y);
    NLC_LAUNCHED("where");
    return 0;
}

static int where_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (prop[0] && !accum[0]) {
        NLC_PTR(float *, dc, nlc_in_grad(f, 0, false));
        if (nlc_fill(f->device_id, dc, 0.0f, nl_in(f, 0)->size)) return -1;
    }
    if (!prop[1] && !prop[2]) return 0;
    NLC_PTR(const float *, c, nlc_in(f, 0));
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    const int64_t n = nl_in(f, 1)->size, inner = where_inner(f);
    for (int s = 1; s <= 2; s++) {
        if (!prop[s]) continue;
        NLC_PTR(float *, dx, nlc_in_grad(f, s, accum[s]));
        if (n == 0 || inner == 0) continue;
        if (accum[s]) k_where_bwd<true><<<nlc_blocks(n), NLC_THREADS>>>(n, inner, s == 1, c, dy, dx);
        else k_where_bwd<false><<<nlc_blocks(n), NLC_THREADS>>>(n, inner, s == 1, c, dy, dx);
        NLC_LAUNCHED("where");
    }
    return 0;
}

/* ---- squared_error: y = (x0 - x1)^2 ---- */

__global__ void k_se_fwd(int64_t n, const float *a, const float *b, float *y) {
    NLC_LOOP(i, n) { float d = a[i] - b[i]; y[i] = d * d; }
}
template <bool ACC> __global__ void k_se_bwd(int64_t n, float s, const float *a, const float *b, const float *dy, float *dx) {
    NLC_LOOP(i, n) {
        float g = s * (a[i] - b[i]) * dy[i];
        dx[i] = ACC ? dx[i] + g : g;
    }
}

static int se_forward(nl_func *f) {
    NLC_PTR(const float *, a, nlc_in(f, 0));
    NLC_PTR(const float *, b, nlc_in(f, 1));
    NLC_PTR(float *, y, nlc_out(f, 0));
    const int64_t n = nl_in(f, 0)->size;
    if (n == 0) return 0;
    k_se_fwd<<<nlc_blocks(n), NLC_THREADS>>>(n, a, b, y);
    NLC_LAUNCHED("squared_error");
    return 0;
}

static int se_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0] && !prop[1]) return 0;
    NLC_PTR(const float *, a, nlc_in(f, 0));
    NLC_PTR(const float *, b, nlc_in(f, 1));
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    const int64_t n = nl_in(f, 0)->size;
    for (int k = 0; k < 2; k++) {
        if (!prop[k]) continue;
        NLC_PTR(float *, dx, nlc_in_grad(f, k, accum[k]));
        if (n == 0) continue;
        const float s = k == 0 ? 2.0f : -2.0f;
        if (accum[k]) k_se_bwd<true><<<nlc_blocks(n), NLC_THREADS>>>(n, s, a, b, dy, dx);
        else k_se_bwd<false><<<nlc_blocks(n), NLC_THREADS>>>(n, s, a, b, dy, dx);
        NLC_LAUNCHED("squared_error");
    }
    return 0;
}

/* ---- reshape: a copy (nlc_copy_forward; also unlink and clip_grad_by_* use it) ---- */

int nlc_copy_forward(nl_func *f) {
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(float *, y, nlc_out(f, 0));
    const int64_t n = nl_in(f, 0)->size;
    if (n == 0) return 0;
    if (nlc_set_device(f->device_id)) return -1;
    NLC_CUDA(cudaMemcpyAsync(y, x, (size_t)n * sizeof(float), cudaMemcpyDeviceToDevice));
    return 0;
}

static int reshape_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
    return nlc_axpby(f->device_id, dy, dx, nl_in(f, 0)->size, 1.0f, accum[0]);
}

/* ---- slice: per axis start (0-based), step, count; the plan is rebuilt from the
 *      arguments exactly as shape.c's setup (which has validated them) builds it ---- */

struct slice_geom {
    int nd;
    int64_t start[NL_MAX_NDIM], step[NL_MAX_NDIM], count[NL_MAX_NDIM], xstride[NL_MAX_NDIM];
};

static void slice_plan(nl_func *f, slice_geom *g) {
    const nl_var *x = nl_in(f, 0);
    const int nd = x->ndim;
    g->nd = nd;
    int64_t stride = 1;
    for (int d = nd - 1; d >= 0; d--) { g->xstride[d] = stride; stride *= x->shape[d]; }
    for (int d = 0; d < nd; d++) {
        const int64_t n = x->shape[d];
        const bool has_start = nl_arg_given(f, 0) && d < nl_arg_len(f, 0);
        const bool has_stop = nl_arg_given(f, 1) && d < nl_arg_len(f, 1);
        const int64_t step = (nl_arg_given(f, 2) && d < nl_arg_len(f, 2)) ? nl_arg_at(f, 2, d) : 1;
        const int64_t a = has_start ? nl_arg_at(f, 0, d) : (step > 0 ? 1 : n);
        const int64_t b = has_stop ? nl_arg_at(f, 1, d) : (step > 0 ? n : 1);
        g->step[d] = step;
        if (n == 0 && !has_start && !has_stop) { g->start[d] = 0; g->count[d] = 0; continue; }
        const int64_t a0 = a < 0 ? n + a : a - 1, b0 = b < 0 ? n + b : b - 1;
        g->start[d] = a0;
        g->count[d] = (b0 - a0) / step + 1;
    }
}

__device__ __forceinline__ int64_t slice_offset(const slice_geom &g, int64_t iy) {
    int64_t off = 0, r = iy;
    for (int d = g.nd - 1; d >= 0; d--) {
        const int64_t c = g.count[d], q = r / c, idx = r - q * c;
        r = q;
        off += (g.start[d] + idx * g.step[d]) * g.xstride[d];
    }
    return off;
}

__global__ void k_slice_fwd(slice_geom g, int64_t n, const float *x, float *y) {
    NLC_LOOP(iy, n) y[iy] = x[slice_offset(g, iy)];
}
/* a slice reaches each input element at most once: no two threads write one place */
__global__ void k_slice_bwd(slice_geom g, int64_t n, const float *dy, float *dx) {
    NLC_LOOP(iy, n) dx[slice_offset(g, iy)] += dy[iy];
}

static int slice_forward(nl_func *f) {
    slice_geom g;
    slice_plan(f, &g);
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(float *, y, nlc_out(f, 0));
    const int64_t n = nl_out(f, 0)->size;
    if (n == 0) return 0;
    k_slice_fwd<<<nlc_blocks(n), NLC_THREADS>>>(g, n, x, y);
    NLC_LAUNCHED("slice");
    return 0;
}

static int slice_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    slice_geom g;
    slice_plan(f, &g);
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
    if (!accum[0] && nlc_fill(f->device_id, dx, 0.0f, nl_in(f, 0)->size)) return -1;
    const int64_t n = nl_out(f, 0)->size;
    if (n == 0) return 0;
    k_slice_bwd<<<nlc_blocks(n), NLC_THREADS>>>(g, n, dy, dx);
    NLC_LAUNCHED("slice");
    return 0;
}

/* ---- registration ---------------------------------------------------------------------- */

struct impl { const char *name; nl_forward_fn fwd; nl_backward_fn bwd; };

#define U(OP) {#OP, unary_forward<u_##OP>, unary_backward<u_##OP>}
#define UN(OP) {#OP, unary_forward<u_##OP>, nograd_backward}
#define B(OP) {#OP, binary_forward<b_##OP>, binary_backward<b_##OP>}
#define BN(OP) {#OP, binary_forward<b_##OP>, nograd_backward}

static const impl g_impls[] = {
    U(add_scalar), U(mul_scalar), U(r_sub_scalar), U(r_div_scalar), U(pow_scalar), U(r_pow_scalar),
    U(maximum_scalar), U(minimum_scalar),
    B(add2), B(sub2), B(mul2), B(div2), B(pow2), B(maximum2), B(minimum2),
    U(identity), U(tanh), U(sigmoid), U(relu), U(leaky_relu), U(elu), U(gelu), U(swish), U(mish),
    U(softplus), U(softsign), U(relu6), U(hard_sigmoid), U(hard_tanh), U(log_sigmoid),
    U(sign), U(abs), U(exp), U(log), U(sin), U(cos), U(tan), U(asin), U(acos), U(atan), U(sinh),
    U(cosh), U(round), U(ceil), U(floor), U(erf),
    B(atan2),
    BN(equal), BN(not_equal), BN(greater), BN(greater_equal), BN(less), BN(less_equal),
    BN(logical_and), BN(logical_or), BN(logical_xor),
    UN(equal_scalar), UN(not_equal_scalar), UN(greater_scalar), UN(greater_equal_scalar),
    UN(less_scalar), UN(less_equal_scalar), UN(logical_and_scalar), UN(logical_or_scalar),
    UN(logical_xor_scalar), UN(logical_not), UN(isnan), UN(isinf),
    U(reset_nan), U(reset_inf),
    {"selu", selu_forward, selu_backward},
    {"celu", celu_forward, celu_backward},
    {"prelu", prelu_forward, prelu_backward},
    {"add_n", add_n_forward, add_n_backward},
    {"mul_n", mul_n_forward, mul_n_backward},
    {"where", where_forward, where_backward},
    {"squared_error", se_forward, se_backward},
    {"reshape", nlc_copy_forward, reshape_backward},
    {"slice", slice_forward, slice_backward},
};

int nlc_register_elementwise(void) {
    for (const impl &m : g_impls)
        if (nlc_register(m.name, "cuda", m.fwd, m.bwd)) return -1;
    return 0;
}

int nlc_elementwise_impl(const char *name, nl_forward_fn *fwd, nl_backward_fn *bwd) {
    for (const impl &m : g_impls)
        if (strcmp(m.name, name) == 0) { *fwd = m.fwd; *bwd = m.bwd; return 0; }
    return nl_error("no CUDA implementation of '%s'", name);
}
