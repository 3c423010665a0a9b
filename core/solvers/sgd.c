/*
 * sgd.c - plain SGD (NNabla's Sgd): w <- w - lr * g, the shared weight decay
 * g <- g + decay * w, and the argument checks every update kernel uses. The Lua solver
 * skips parameters whose grad is lazily zero.
 */
#include "solver_kernel.h"

int nl_solver_ptrs(const char *who, nl_array *w, nl_array *g, int n_states,
                   nl_array *const *states, float **pw, const float **pg, float **ps) {
    if (!w || !g) return nl_error("%s update: no parameter or gradient array", who);
    int64_t n = nl_array_size(w);
    if (nl_array_size(g) != n)
        return nl_error("%s update: parameter has %lld elements, gradient %lld", who,
                        (long long)n, (long long)nl_array_size(g));
    for (int k = 0; k < n_states; k++) {
        if (!states[k]) return nl_error("%s update: state array %d is missing", who, k + 1);
        if (nl_array_size(states[k]) != n)
            return nl_error("%s update: parameter has %lld elements, state %d has %lld", who,
                            (long long)n, k + 1, (long long)nl_array_size(states[k]));
    }
    for (int k = 0; k < n_states; k++) {
        int clash = states[k] == w || states[k] == g;
        for (int j = 0; j < k; j++) clash |= states[j] == states[k];
        if (clash)
            return nl_error("%s update: state arrays must be distinct from each other "
                            "and from the parameter and its gradient", who);
    }
    if (!(*pg = nl_array_host(g, NL_READ))) return -1;
    if (!(*pw = nl_array_host(w, NL_READWRITE))) return -1;
    for (int k = 0; k < n_states; k++)
        if (!(ps[k] = nl_array_host(states[k], NL_READWRITE))) return -1;
    return 0;
}

static NL_SIMD_CLONES void sgd_range(int64_t i0, int64_t i1, void *vc) {
    const nl_solver_ctx *c = vc;
    float *restrict w = c->w;
    const float *restrict g = c->g;
    const float lr = c->k[0];
    for (int64_t i = i0; i < i1; i++) w[i] -= lr * g[i];
}

int nl_sgd_update(nl_array *w, nl_array *g, float lr) {
    if (nl_array_size(w) != nl_array_size(g))
        return nl_error("sgd update: parameter has %lld elements, gradient %lld",
                        (long long)nl_array_size(w), (long long)nl_array_size(g));
    const float *pg = nl_array_host(g, NL_READ);
    float *pw = pg ? nl_array_host(w, NL_READWRITE) : NULL;
    if (!pw) return -1;
    const int64_t n = nl_array_size(w);
    if (pw == pg) {   /* the same array: no restrict loop */
        for (int64_t i = 0; i < n; i++) pw[i] -= lr * pw[i];
        return 0;
    }
    nl_solver_ctx c = {.w = pw, .g = pg, .k = {lr}};
    nl_parallel_for(n, NL_SOLVER_COST_PER_ITEM, sgd_range, &c);
    return 0;
}

int nl_weight_decay(nl_array *w, nl_array *g, float decay) {
    if (decay == 0.0f) return 0;
    return nl_axpy(g, decay, w);
}
