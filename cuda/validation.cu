/*
 * validation.cu - the CUDA twins of validation.c's metrics: top_n_error, binary_error and
 * confusion_matrix, with every option the CPU has (axis, n).
 *
 * One thread per position (top_n_error, confusion_matrix: x viewed as (outer, C, inner)
 * around the class axis, target as (outer, 1, inner)) or per element (binary_error). The
 * per-position math (labels.h's nl_top_n_error_at, nl_argmax_at, nl_binary_error) and the
 * label tests are the functions the CPU calls; confusion_matrix counts with atomic float
 * adds of 1, exact (below 2^24, like the CPU's sums) whatever their order.
 * A bad label fails as on the CPU: the kernels record the first bad position (atomicMin:
 * the lowest, which the CPU's in-order loop meets first), the host reads it back and names
 * it with the CPU's message. The inputs get zero gradients, as on the CPU (labels.h's
 * nl_no_grad_input).
 */
#include "bad_entry.cuh"   /* the node's bad-label flag and check */

/* ---- top_n_error ---------------------------------------------------------------------- */

/* x: (outer, C, inner); t, y: (outer, 1, inner); y = 1 where more than n classes score >=
 * the label's score, else 0; a bad label is recorded in bad */
__global__ void k_top_n(int64_t outer, int64_t C, int64_t inner, int64_t n, const float *__restrict__ x,
                        const float *__restrict__ t, float *__restrict__ y, unsigned long long *bad) {
    NLC_LOOP(pos, outer * inner) {
        const int64_t l = nlc_label_at(t, pos, C, bad);
        if (l < 0) continue;
        const int64_t o = pos / inner, i = pos - o * inner;
        y[pos] = nl_top_n_error_at(x + o * C * inner + i, C, inner, l, n);
    }
}

static int top_n_forward(nl_func *f) {
    if (nlc_set_device(f->device_id)) return -1;   /* kernels and copies on the node's device */
    int64_t outer, C, inner;
    if (nl_class_dims(f, TOPN_AXIS, &outer, &C, &inner)) return -1;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(const float *, t, nlc_in(f, 1));
    NLC_PTR(float *, y, nlc_out(f, 0));
    const int64_t n = outer * inner;
    if (n == 0) return 0;
    NLC_PTR(unsigned long long *, bad, nlc_node_flag(f));
    k_top_n<<<nlc_blocks(n), NLC_THREADS>>>(outer, C, inner, nl_arg_int(f, TOPN_N), x, t, y, bad);
    NLC_LAUNCHED("top_n_error");
    return nlc_label_check(bad, t, C);
}

/* ---- binary_error ---------------------------------------------------------------------- */

/* x, t, y: n elements; y = 1 where (x >= 0.5) differs from (t >= 0.5), else 0 */
__global__ void k_binary_error(int64_t n, const float *__restrict__ x, const float *__restrict__ t,
                               float *__restrict__ y) {
    NLC_LOOP(i, n) y[i] = nl_binary_error(x[i], t[i]);
}

static int binary_error_forward(nl_func *f) {
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(const float *, t, nlc_in(f, 1));
    NLC_PTR(float *, y, nlc_out(f, 0));
    const int64_t n = nl_in(f, 0)->size;
    if (n == 0) return 0;
    if (nlc_set_device(f->device_id)) return -1;
    k_binary_error<<<nlc_blocks(n), NLC_THREADS>>>(n, x, t, y);
    NLC_LAUNCHED("binary_error");
    return 0;
}

/* ---- confusion_matrix ------------------------------------------------------------------- */

/* x: (outer, C, inner); t: (outer, 1, inner); y: (C, C), zeroed before: y[label][argmax]
 * += 1 per position; a bad label is recorded in bad */
__global__ void k_confusion(int64_t outer, int64_t C, int64_t inner, const float *__restrict__ x,
                            const float *__restrict__ t, float *y, unsigned long long *bad) {
    NLC_LOOP(pos, outer * inner) {
        const int64_t l = nlc_label_at(t, pos, C, bad);
        if (l < 0) continue;
        const int64_t o = pos / inner, i = pos - o * inner;
        atomicAdd(y + l * C + nl_argmax_at(x + o * C * inner + i, C, inner), 1.0f);
    }
}

static int confusion_forward(nl_func *f) {
    int64_t outer, C, inner;
    if (nl_class_dims(f, CM_AXIS, &outer, &C, &inner)) return -1;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(const float *, t, nlc_in(f, 1));
    NLC_PTR(float *, y, nlc_out(f, 0));
    if (nlc_fill(f->device_id, y, 0.0f, C * C)) return -1;
    const int64_t n = outer * inner;
    if (n == 0) return 0;
    NLC_PTR(unsigned long long *, bad, nlc_node_flag(f));
    k_confusion<<<nlc_blocks(n), NLC_THREADS>>>(outer, C, inner, x, t, y, bad);
    NLC_LAUNCHED("confusion_matrix");
    return nlc_label_check(bad, t, C);
}

/* ---- backward: no input gets a gradient --------------------------------------------------- */

static int metric_backward(nl_func *f, const bool *prop, const bool *accum) {
    for (int i = 0; i < f->n_in; i++) nl_no_grad_input(f, i, prop, accum);
    return 0;
}

/* ---- registration ---------------------------------------------------------------------------- */

int nlc_register_validation(void) {
    if (nlc_register("top_n_error", "cuda", top_n_forward, metric_backward)) return -1;
    if (nlc_register("binary_error", "cuda", binary_error_forward, metric_backward)) return -1;
    if (nlc_register("confusion_matrix", "cuda", confusion_forward, metric_backward)) return -1;
    return 0;
}
