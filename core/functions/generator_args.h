/*
 * generator_args.h - the argument positions of array_ops.c's functions without inputs
 * (arange, linspace, constant) and of validation.c's sink, shared with their CUDA twins
 * (cuda/generators.cu), and the value arange and linspace put at position i, so both
 * backends compute every element the same way (in double, rounded once to float).
 */
#ifndef NNLUA_GENERATOR_ARGS_H
#define NNLUA_GENERATOR_ARGS_H
#include "elementwise_math.h"   /* NL_HD */
#include <stdint.h>

enum { AR_START, AR_STOP, AR_STEP };     /* arange(start, stop, step) */
enum { LS_START, LS_STOP, LS_NUM };      /* linspace(start, stop, num) */
enum { CO_VAL, CO_SHAPE };               /* constant(val, shape) */
enum { SINK_ONE_INPUT_GRAD };            /* sink(x..., one_input_grad) */

/* arange's element i: start + i * step */
NL_HD float nl_arange_at(double start, double step, int64_t i) {
    return (float)(start + (double)i * step);
}

/* linspace's element i of n (n >= 1): start + i * (stop - start) / (n - 1), stop exactly last */
NL_HD float nl_linspace_at(double start, double stop, int64_t n, int64_t i) {
    if (n == 1) return (float)start;
    if (i == n - 1) return (float)stop;
    return (float)(start + (double)i * ((stop - start) / (double)(n - 1)));
}
#endif
