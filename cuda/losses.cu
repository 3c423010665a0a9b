/*
 * losses.cu - CUDA kernels for the element-wise losses of core/functions/loss_ext.c:
 * sigmoid_cross_entropy, binary_cross_entropy, absolute_error, huber_loss and
 * epsilon_insensitive_loss (two inputs of one shape, an output of that shape, not
 * averaged).
 *
 * The math is not written here: the kernels call the nl_sigce_*, nl_bce_*, nl_abserr_*,
 * nl_huber_* and nl_eil_* functions of core/functions/elementwise_math.h that the CPU
 * kernels call, so the CPU specs test the math the GPU runs. The shape and argument
 * checks are the CPU setup's; delta / epsilon are read as loss_ext.c reads them
 * ((float)nl_arg_float(f, 0)). Gradients follow loss_ext.c: sigmoid_cross_entropy's
 * target gets none (a lazy zero when it is propagated and not accumulated), the other
 * losses give both inputs one; accum[] adds into a gradient instead of overwriting it.
 */
#include "common.cuh"
extern "C" {
#include "labels.h"
}

/* One loss: y = fwd(a, b, v); da = bwd0(a, b, dy, v), db = bwd1(a, b, dy, v) when GRAD1. */
struct l_sigce {
    static constexpr bool GRAD1 = false;
    static __device__ __forceinline__ float fwd(float x, float t, float) { return nl_sigce_fwd(x, t); }
    static __device__ __forceinline__ float bwd0(float x, float t, float dy, float) { return nl_sigce_bwd(x, t, dy); }
    static __device__ __forceinline__ float bwd1(float, float, float, float) { return 0.0f; }
};
struct l_bce {
    static constexpr bool GRAD1 = true;
    static __device__ __forceinline__ float fwd(float x, float t, float) { return nl_bce_fwd(x, t); }
    static __device__ __forceinline__ float bwd0(float x, float t, float dy, float) { return nl_bce_bwd0(x, t, dy); }
    static __device__ __forceinline__ float bwd1(float x, float t, float dy, float) { return nl_bce_bwd1(x, t, dy); }
};
/* losses of d = x0 - x1: x1's gradient is the negation of x0's (-1 * g, as loss_ext.c) */
#define NLC_DIFF_LOSS(OP)                                                                     \
    struct l_##OP {                                                                           \
        static constexpr bool GRAD1 = true;                                                   \
        static __device__ __forceinline__ float fwd(float a, float b, float v) { return nl_##OP##_fwd(a, b, v); } \
        static __device__ __forceinline__ float bwd0(float a, float b, float dy, float v) {   \
            return nl_##OP##_bwd(a, b, dy, v);                                                \
        }                                                                                     \
        static __device__ __forceinline__ float bwd1(float a, float b, float dy, float v) {   \
            return -1.0f * nl_##OP##_bwd(a, b, dy, v);                                        \
        }                                                                                     \
    };
NLC_DIFF_LOSS(abserr) NLC_DIFF_LOSS(huber) NLC_DIFF_LOSS(eil)

/* ---- kernels ---- */

/* a, b, y: n elements */
template <class L>
__global__ void k_loss_fwd(int64_t n, const float *__restrict__ a, const float *__restrict__ b,
                           float *__restrict__ y, float v) {
    NLC_LOOP(i, n) y[i] = L::fwd(a[i], b[i], v);
}

/* a, b, dy, dx: n elements; dx is input WHICH's gradient, written or (ACC) added to */
template <class L, int WHICH, bool ACC>
__global__ void k_loss_bwd(int64_t n, const float *a, const float *b, const float *__restrict__ dy,
                           float *dx, float v) {
    NLC_LOOP(i, n) {
        const float g = WHICH == 0 ? L::bwd0(a[i], b[i], dy[i], v) : L::bwd1(a[i], b[i], dy[i], v);
        dx[i] = ACC ? dx[i] + g : g;
    }
}

/* delta (huber_loss), epsilon (epsilon_insensitive_loss): the first argument; 0 without */
static float loss_arg(nl_func *f) { return f->def->n_args ? (float)nl_arg_float(f, 0) : 0.0f; }

template <class L> static int loss_forward(nl_func *f) {
    NLC_PTR(const float *, a, nlc_in(f, 0));
    NLC_PTR(const float *, b, nlc_in(f, 1));
    NLC_PTR(float *, y, nlc_out(f, 0));
    const int64_t n = nl_in(f, 0)->size;
    if (n == 0) return 0;
    if (nlc_set_device(f->device_id)) return -1;
    k_loss_fwd<L><<<nlc_blocks(n), NLC_THREADS>>>(n, a, b, y, loss_arg(f));
    NLC_LAUNCHED(f->def->name);
    return 0;
}

template <class L, int WHICH> static int loss_grad(nl_func *f, const float *a, const float *b, const float *dy,
                                                   bool acc) {
    NLC_PTR(float *, dx, nlc_in_grad(f, WHICH, acc));
    const int64_t n = nl_in(f, 0)->size;
    if (n == 0) return 0;
    if (nlc_set_device(f->device_id)) return -1;
    const float v = loss_arg(f);
    if (acc) k_loss_bwd<L, WHICH, true><<<nlc_blocks(n), NLC_THREADS>>>(n, a, b, dy, dx, v);
    else k_loss_bwd<L, WHICH, false><<<nlc_blocks(n), NLC_THREADS>>>(n, a, b, dy, dx, v);
    NLC_LAUNCHED(f->def->name);
    return 0;
}

/* x0 before x1: the graph sets accum on the second of two identical inputs */
template <class L> static int loss_backward(nl_func *f, const bool *prop, const bool *accum) {
    const bool p1 = L::GRAD1 && prop[1];
    if (prop[0] || p1) {
        NLC_PTR(const float *, a, nlc_in(f, 0));
        NLC_PTR(const float *, b, nlc_in(f, 1));
        NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
        if (prop[0] && loss_grad<L, 0>(f, a, b, dy, accum[0])) return -1;
        if (p1 && loss_grad<L, 1>(f, a, b, dy, accum[1])) return -1;
    }
    if (!L::GRAD1) nl_no_grad_input(f, 1, prop, accum);   /* the target */
    return 0;
}

/* ---- registration ---------------------------------------------------------------------- */

struct loss_impl { const char *name; nl_forward_fn fwd; nl_backward_fn bwd; };

#define LOSS(NAME, OP) {NAME, loss_forward<l_##OP>, loss_backward<l_##OP>}

static const loss_impl g_losses[] = {
    LOSS("sigmoid_cross_entropy", sigce),
    LOSS("binary_cross_entropy", bce),
    LOSS("absolute_error", abserr),
    LOSS("huber_loss", huber),
    LOSS("epsilon_insensitive_loss", eil),
};

int nlc_register_losses(void) {
    for (const loss_impl &m : g_losses)
        if (nlc_register(m.name, "cuda", m.fwd, m.bwd)) return -1;
    return 0;
}
