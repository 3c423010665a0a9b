/*
 * adagrad.c - adaptive per-element step sizes (NNabla's Adagrad, Adadelta, RMSprop and
 * RMSpropGraves).
 *
 *   Adagrad        v <- v + g^2;                        w <- w - lr*g/(sqrt(v)+eps)
 *   Adadelta       Eg <- decay*Eg + (1-decay)*g^2;  d = sqrt((Ed+eps)/(Eg+eps))*g;
 *                  Ed <- decay*Ed + (1-decay)*d^2;      w <- w - lr*d
 *                  (states e_sqr_grad = Eg, e_sqr_delta = Ed)
 *   RMSprop        v <- decay*v + (1-decay)*g^2;        w <- w - lr/(sqrt(v)+eps)*g
 *   RMSpropGraves  n <- decay*n + (1-decay)*g^2;  gm <- decay*gm + (1-decay)*g;
 *                  d <- momentum*d - lr*g/sqrt(n - gm^2 + eps);   w <- w + d
 */
#include "solver_kernel.h"

static void adagrad_range(int64_t i0, int64_t i1, void *p) {
    const nl_solver_ctx *c = p;
    float *w = c->w, *v = c->s[0];
    const float *g = c->g;
    const float lr = c->k[0], eps = c->k[1];
    for (int64_t i = i0; i < i1; i++) {
        v[i] += g[i] * g[i];
        w[i] -= lr * g[i] / (sqrtf(v[i]) + eps);
    }
}

int nl_adagrad_update(nl_array *w, nl_array *g, nl_array *v, float lr, float eps) {
    nl_solver_ctx c = { .k = { lr, eps } };
    if (nl_solver_ptrs("Adagrad", w, g, 1, &v, &c.w, &c.g, c.s)) return -1;
    nl_parallel_for(nl_array_size(w), NL_SOLVER_COST_PER_ITEM, adagrad_range, &c);
    return 0;
}

static void adadelta_range(int64_t i0, int64_t i1, void *p) {
    const nl_solver_ctx *c = p;
    float *w = c->w, *eg = c->s[0], *ed = c->s[1];
    const float *g = c->g;
    const float lr = c->k[0], decay = c->k[1], eps = c->k[2];
    for (int64_t i = i0; i < i1; i++) {
        eg[i] = eg[i] * decay + g[i] * g[i] * (1 - decay);
        const float delta = sqrtf((ed[i] + eps) / (eg[i] + eps)) * g[i];
        ed[i] = ed[i] * decay + delta * delta * (1 - decay);
        w[i] -= lr * delta;
    }
}

int nl_adadelta_update(nl_array *w, nl_array *g, nl_array *e_sqr_grad, nl_array *e_sqr_delta,
                       float lr, float decay, float eps) {
    nl_array *st[2] = { e_sqr_grad, e_sqr_delta };
    nl_solver_ctx c = { .k = { lr, decay, eps } };
    if (nl_solver_ptrs("Adadelta", w, g, 2, st, &c.w, &c.g, c.s)) return -1;
    nl_parallel_for(nl_array_size(w), NL_SOLVER_COST_PER_ITEM, adadelta_range, &c);
    return 0;
}

static void rmsprop_range(int64_t i0, int64_t i1, void *p) {
    const nl_solver_ctx *c = p;
    float *w = c->w, *v = c->s[0];
    const float *g = c->g;
    const float lr = c->k[0], decay = c->k[1], eps = c->k[2];
    for (int64_t i = i0; i < i1; i++) {
        v[i] = v[i] * decay + g[i] * g[i] * (1 - decay);
        w[i] -= lr / (sqrtf(v[i]) + eps) * g[i];
    }
}

int nl_rmsprop_update(nl_array *w, nl_array *g, nl_array *v, float lr, float decay, float eps) {
    nl_solver_ctx c = { .k = { lr, decay, eps } };
    if (nl_solver_ptrs("RMSprop", w, g, 1, &v, &c.w, &c.g, c.s)) return -1;
    nl_parallel_for(nl_array_size(w), NL_SOLVER_COST_PER_ITEM, rmsprop_range, &c);
    return 0;
}

static void rmsprop_graves_range(int64_t i0, int64_t i1, void *p) {
    const nl_solver_ctx *c = p;
    float *w = c->w, *n = c->s[0], *gm = c->s[1], *d = c->s[2];
    const float *g = c->g;
    const float lr = c->k[0], decay = c->k[1], mom = c->k[2], eps = c->k[3];
    for (int64_t i = i0; i < i1; i++) {
        n[i] = decay * n[i] + (1 - decay) * g[i] * g[i];
        gm[i] = decay * gm[i] + (1 - decay) * g[i];
        d[i] = mom * d[i] - lr * g[i] / sqrtf(n[i] - gm[i] * gm[i] + eps);
        w[i] += d[i];
    }
}

int nl_rmsprop_graves_update(nl_array *w, nl_array *g, nl_array *n, nl_array *gm, nl_array *d,
                             float lr, float decay, float momentum, float eps) {
    nl_array *st[3] = { n, gm, d };
    nl_solver_ctx c = { .k = { lr, decay, momentum, eps } };
    if (nl_solver_ptrs("RMSpropGraves", w, g, 3, st, &c.w, &c.g, c.s)) return -1;
    nl_parallel_for(nl_array_size(w), NL_SOLVER_COST_PER_ITEM, rmsprop_graves_range, &c);
    return 0;
}
