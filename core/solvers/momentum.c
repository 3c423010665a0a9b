/*
 * momentum.c - momentum-style SGD (NNabla's Momentum, Nesterov and SgdW); state m.
 *
 *   Momentum  m <- momentum*m + lr*g;                 w <- w - m
 *   Nesterov  m' <- momentum*m - lr*g;                w <- w - momentum*m + (1+momentum)*m'
 *   SgdW      m <- momentum*m + lr*g;                 w <- w - m - decay*w
 *             (decay = (lr / initial lr) * the weight-decay rate, computed by the caller)
 */
#include "solver_kernel.h"

static void momentum_range(int64_t i0, int64_t i1, void *p) {
    const nl_solver_ctx *c = p;
    float *w = c->w, *m = c->s[0];
    const float *g = c->g;
    const float lr = c->k[0], mom = c->k[1];
    for (int64_t i = i0; i < i1; i++) {
        m[i] = mom * m[i] + lr * g[i];
        w[i] -= m[i];
    }
}

int nl_momentum_update(nl_array *w, nl_array *g, nl_array *m, float lr, float momentum) {
    nl_solver_ctx c = { .k = { lr, momentum } };
    if (nl_solver_ptrs("Momentum", w, g, 1, &m, &c.w, &c.g, c.s)) return -1;
    nl_parallel_for(nl_array_size(w), NL_SOLVER_COST_PER_ITEM, momentum_range, &c);
    return 0;
}

static void nesterov_range(int64_t i0, int64_t i1, void *p) {
    const nl_solver_ctx *c = p;
    float *w = c->w, *m = c->s[0];
    const float *g = c->g;
    const float lr = c->k[0], mom = c->k[1];
    for (int64_t i = i0; i < i1; i++) {
        const float prev = m[i];
        m[i] = mom * m[i] - lr * g[i];
        w[i] += -mom * prev + (1 + mom) * m[i];
    }
}

int nl_nesterov_update(nl_array *w, nl_array *g, nl_array *m, float lr, float momentum) {
    nl_solver_ctx c = { .k = { lr, momentum } };
    if (nl_solver_ptrs("Nesterov", w, g, 1, &m, &c.w, &c.g, c.s)) return -1;
    nl_parallel_for(nl_array_size(w), NL_SOLVER_COST_PER_ITEM, nesterov_range, &c);
    return 0;
}

static void sgdw_range(int64_t i0, int64_t i1, void *p) {
    const nl_solver_ctx *c = p;
    float *w = c->w, *m = c->s[0];
    const float *g = c->g;
    const float lr = c->k[0], mom = c->k[1], decay = c->k[2];
    for (int64_t i = i0; i < i1; i++) {
        m[i] = mom * m[i] + lr * g[i];
        w[i] = w[i] - m[i] - decay * w[i];
    }
}

int nl_sgdw_update(nl_array *w, nl_array *g, nl_array *m, float lr, float momentum,
                   float decay) {
    nl_solver_ctx c = { .k = { lr, momentum, decay } };
    if (nl_solver_ptrs("SgdW", w, g, 1, &m, &c.w, &c.g, c.s)) return -1;
    nl_parallel_for(nl_array_size(w), NL_SOLVER_COST_PER_ITEM, sgdw_range, &c);
    return 0;
}
