/*
 * adam.c - the Adam family (NNabla's Adam, AdamW, AMSGRAD, AdaBound, Adamax). t is the
 * parameter's step count, already incremented for this update (1 on the first one).
 *
 *   Adam/AdamW  m <- b1*m + (1-b1)*g;  v <- b2*v + (1-b2)*g^2
 *               w <- w - alpha_t*m/(sqrt(v)+eps) - decay*w,
 *               alpha_t = alpha*sqrt(1-b2^t)/(1-b1^t); decay = 0 for Adam, and for AdamW
 *               (alpha / initial alpha) * the weight-decay rate (computed by the caller)
 *   AMSGRAD     m, v as Adam; v_hat <- max(v_hat, v); w <- w - a*m/(sqrt(v_hat)+eps),
 *               a = alpha_t with bias_correction, else alpha
 *   AdaBound    m, v as Adam; final = final_lr*(alpha/initial alpha);
 *               lower = final*(1 - 1/(gamma*t+1)), upper = final*(1 + 1/(gamma*t));
 *               w <- w - clamp(alpha_t/(sqrt(v)+eps), lower, upper)*m
 *   Adamax      m as Adam; u <- max(b2*u, |g|); w <- w - alpha/(1-b1^t)*m/(u+eps)
 *               (NNabla's code has no sqrt(1-b2^t) factor, whatever its docs say)
 */
#include "solver_kernel.h"

/* alpha * sqrt(1 - b2^t) / (1 - b1^t), the factor NNabla computes in double and keeps as float */
static float adam_correction(float beta1, float beta2, int64_t t) {
    return (float)(sqrt(1 - pow((double)beta2, (double)t)) / (1 - pow((double)beta1, (double)t)));
}

static int check_t(const char *who, int64_t t) {
    if (t < 1) return nl_error("%s update: step count t must be at least 1, got %lld", who, (long long)t);
    return 0;
}

static void adam_range(int64_t i0, int64_t i1, void *p) {
    const nl_solver_ctx *c = p;
    float *w = c->w, *m = c->s[0], *v = c->s[1];
    const float *g = c->g;
    const float at = c->k[0], b1 = c->k[1], b2 = c->k[2], eps = c->k[3], decay = c->k[4];
    for (int64_t i = i0; i < i1; i++) {
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        w[i] = w[i] - at * m[i] / (sqrtf(v[i]) + eps) - decay * w[i];
    }
}

int nl_adam_update(nl_array *w, nl_array *g, nl_array *mean, nl_array *var, float alpha,
                   float beta1, float beta2, float eps, int64_t t, float decay) {
    nl_array *st[2] = { mean, var };
    nl_solver_ctx c;
    if (check_t("Adam", t) || nl_solver_ptrs("Adam", w, g, 2, st, &c.w, &c.g, c.s)) return -1;
    c.k[0] = alpha * adam_correction(beta1, beta2, t);
    c.k[1] = beta1, c.k[2] = beta2, c.k[3] = eps, c.k[4] = decay;
    nl_parallel_for(nl_array_size(w), NL_SOLVER_COST_PER_ITEM, adam_range, &c);
    return 0;
}

static void amsgrad_range(int64_t i0, int64_t i1, void *p) {
    const nl_solver_ctx *c = p;
    float *w = c->w, *m = c->s[0], *v = c->s[1], *vh = c->s[2];
    const float *g = c->g;
    const float at = c->k[0], b1 = c->k[1], b2 = c->k[2], eps = c->k[3];
    for (int64_t i = i0; i < i1; i++) {
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        vh[i] = vh[i] > v[i] ? vh[i] : v[i];
        w[i] = w[i] - at * m[i] / (sqrtf(vh[i]) + eps);
    }
}

int nl_amsgrad_update(nl_array *w, nl_array *g, nl_array *m, nl_array *v, nl_array *v_hat,
                      float alpha, float beta1, float beta2, float eps, int bias_correction,
                      int64_t t) {
    nl_array *st[3] = { m, v, v_hat };
    nl_solver_ctx c;
    if (check_t("AMSGRAD", t) || nl_solver_ptrs("AMSGRAD", w, g, 3, st, &c.w, &c.g, c.s)) return -1;
    c.k[0] = alpha * (bias_correction ? adam_correction(beta1, beta2, t) : 1.0f);
    c.k[1] = beta1, c.k[2] = beta2, c.k[3] = eps;
    nl_parallel_for(nl_array_size(w), NL_SOLVER_COST_PER_ITEM, amsgrad_range, &c);
    return 0;
}

static void adabound_range(int64_t i0, int64_t i1, void *p) {
    const nl_solver_ctx *c = p;
    float *w = c->w, *m = c->s[0], *v = c->s[1];
    const float *g = c->g;
    const float at = c->k[0], b1 = c->k[1], b2 = c->k[2], eps = c->k[3];
    const float lower = c->k[4], upper = c->k[5];
    for (int64_t i = i0; i < i1; i++) {
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        float eta = at / (sqrtf(v[i]) + eps);
        eta = eta > lower ? eta : lower;
        eta = upper < eta ? upper : eta;
        w[i] = w[i] - eta * m[i];
    }
}

int nl_adabound_update(nl_array *w, nl_array *g, nl_array *mean, nl_array *var, float alpha,
                       float init_alpha, float beta1, float beta2, float eps, float final_lr,
                       float gamma, int64_t t) {
    nl_array *st[2] = { mean, var };
    nl_solver_ctx c;
    if (check_t("AdaBound", t) || nl_solver_ptrs("AdaBound", w, g, 2, st, &c.w, &c.g, c.s)) return -1;
    const float final = final_lr * (alpha / init_alpha), gt = gamma * (float)t;
    c.k[0] = alpha * adam_correction(beta1, beta2, t);
    c.k[1] = beta1, c.k[2] = beta2, c.k[3] = eps;
    c.k[4] = final * (1 - 1 / (gt + 1));
    c.k[5] = final * (1 + 1 / gt);
    nl_parallel_for(nl_array_size(w), NL_SOLVER_COST_PER_ITEM, adabound_range, &c);
    return 0;
}

static void adamax_range(int64_t i0, int64_t i1, void *p) {
    const nl_solver_ctx *c = p;
    float *w = c->w, *m = c->s[0], *u = c->s[1];
    const float *g = c->g;
    const float at = c->k[0], b1 = c->k[1], b2 = c->k[2], eps = c->k[3];
    for (int64_t i = i0; i < i1; i++) {
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        const float du = b2 * u[i], ag = fabsf(g[i]);
        u[i] = du > ag ? du : ag;
        w[i] = w[i] - at * m[i] / (u[i] + eps);
    }
}

int nl_adamax_update(nl_array *w, nl_array *g, nl_array *m, nl_array *u, float alpha,
                     float beta1, float beta2, float eps, int64_t t) {
    nl_array *st[2] = { m, u };
    nl_solver_ctx c;
    if (check_t("Adamax", t) || nl_solver_ptrs("Adamax", w, g, 2, st, &c.w, &c.g, c.s)) return -1;
    c.k[0] = alpha * (float)(1 / (1 - pow((double)beta1, (double)t)));
    c.k[1] = beta1, c.k[2] = beta2, c.k[3] = eps;
    nl_parallel_for(nl_array_size(w), NL_SOLVER_COST_PER_ITEM, adamax_range, &c);
    return 0;
}
