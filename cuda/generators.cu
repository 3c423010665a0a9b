/*
 * generators.cu - the CUDA twins of the functions whose output is not computed from input
 * data: arange, linspace and constant (array_ops.c; no inputs), and the graph helpers
 * unlink (y = x, x gets no gradient) and sink (a 0-d dummy root whose backward gives every
 * input the gradient 1, or nothing) of validation.c. The element formulas are
 * generator_args.h's, which the CPU runs too, so both backends give the same bits.
 */
#include "common.cuh"
extern "C" {
#include "generator_args.h"
#include "labels.h"   /* nl_no_grad_input */
}

/* y: (n); y[i] = start + i * step */
__global__ void k_arange(int64_t n, double start, double step, float *y) {
    NLC_LOOP(i, n) y[i] = nl_arange_at(start, step, i);
}

/* y: (n); n evenly spaced values from start to stop, both included */
__global__ void k_linspace(int64_t n, double start, double stop, float *y) {
    NLC_LOOP(i, n) y[i] = nl_linspace_at(start, stop, n, i);
}

/* dx: (n); dx += 1 */
__global__ void k_add_one(int64_t n, float *dx) {
    NLC_LOOP(i, n) dx[i] += 1.0f;
}

static int no_backward(nl_func *, const bool *, const bool *) { return 0; }

static int arange_forward(nl_func *f) {
    NLC_PTR(float *, y, nlc_out(f, 0));
    const int64_t n = nl_out(f, 0)->size;
    if (n == 0) return 0;
    if (nlc_set_device(f->device_id)) return -1;
    k_arange<<<nlc_blocks(n), NLC_THREADS>>>(n, nl_arg_float(f, AR_START), nl_arg_float(f, AR_STEP), y);
    NLC_LAUNCHED("arange");
    return 0;
}

static int linspace_forward(nl_func *f) {
    NLC_PTR(float *, y, nlc_out(f, 0));
    const int64_t n = nl_out(f, 0)->size;
    if (n == 0) return 0;
    if (nlc_set_device(f->device_id)) return -1;
    k_linspace<<<nlc_blocks(n), NLC_THREADS>>>(n, nl_arg_float(f, LS_START), nl_arg_float(f, LS_STOP), y);
    NLC_LAUNCHED("linspace");
    return 0;
}

static int constant_forward(nl_func *f) {
    NLC_PTR(float *, y, nlc_out(f, 0));
    return nlc_fill(f->device_id, y, (float)nl_arg_float(f, CO_VAL), nl_out(f, 0)->size);
}

/* unlink: y = x (nlc_copy_forward); x gets a zero gradient */
static int unlink_backward(nl_func *f, const bool *prop, const bool *accum) {
    nl_no_grad_input(f, 0, prop, accum);
    return 0;
}

/* sink: y (0-d) = 0 */
static int sink_forward(nl_func *f) {
    NLC_PTR(float *, y, nlc_out(f, 0));
    return nlc_fill(f->device_id, y, 0.0f, 1);
}

/* every input's gradient (+)= 1 (a lazy fill when overwriting), or untouched */
static int sink_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!nl_arg_bool(f, SINK_ONE_INPUT_GRAD)) return 0;
    for (int i = 0; i < f->n_in; i++) {
        if (!prop[i]) continue;
        if (!accum[i]) { nl_array_fill(nl_in(f, i)->grad, 1.0f); continue; }
        NLC_PTR(float *, dx, nlc_in_grad(f, i, true));
        const int64_t n = nl_in(f, i)->size;
        if (n == 0) continue;
        if (nlc_set_device(f->device_id)) return -1;
        k_add_one<<<nlc_blocks(n), NLC_THREADS>>>(n, dx);
        NLC_LAUNCHED("sink (backward)");
    }
    return 0;
}

int nlc_register_generators(void) {
    if (nlc_register("arange", "cuda", arange_forward, no_backward)) return -1;
    if (nlc_register("linspace", "cuda", linspace_forward, no_backward)) return -1;
    if (nlc_register("constant", "cuda", constant_forward, no_backward)) return -1;
    if (nlc_register("unlink", "cuda", nlc_copy_forward, unlink_backward)) return -1;
    if (nlc_register("sink", "cuda", sink_forward, sink_backward)) return -1;
    return 0;
}
