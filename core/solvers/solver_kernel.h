/*
 * solver_kernel.h - what the update kernels in core/solvers/ share (not part of the FFI
 * surface). Each kernel updates one parameter: the Lua driver (lua/nnlua/solvers.lua)
 * decides which parameters get updated, counts t and passes it in.
 *
 * Arithmetic follows NNabla's CPU code (src/nbla/solver/generic/<name>.cpp): per-element math
 * in float, step-size scalars (bias corrections) from double pow/sqrt rounded to float.
 */
#ifndef NNLUA_SOLVER_KERNEL_H
#define NNLUA_SOLVER_KERNEL_H
#include "function.h"
#include <math.h>

enum { NL_SOLVER_MAX_STATES = 4 };

/* Checks that the gradient and every state array have the parameter's size and fetches
 * host pointers: *pg for reading, *pw and ps[k] for reading and writing (a pending lazy
 * zero of a fresh state array is materialized here, on the first update). who names the
 * solver in messages. Returns 0, or -1 with a message. */
int nl_solver_ptrs(const char *who, nl_array *w, nl_array *g, int n_states,
                   nl_array *const *states, float **pw, const float **pg, float **ps);

/* Arguments of a range body run by nl_parallel_for: up to four state pointers and eight
 * scalars, interpreted by each kernel. */
typedef struct nl_solver_ctx {
    float *w;
    const float *g;
    float *s[NL_SOLVER_MAX_STATES];
    float k[8];
} nl_solver_ctx;

/* Element-wise updates are memory bound: a few operations per element. */
enum { NL_SOLVER_COST_PER_ITEM = 4 };

#endif
