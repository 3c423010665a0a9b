/*
 * lars_lamb.c - layer-wise adaptive rates (NNabla's Lars and Lamb). Both take the fused
 * weight-decay rate of this update (`decay`) from the caller. Norms are per parameter
 * tensor, summed in double (NNabla sums in float); the loops run on one thread.
 *
 *   Lars  gn = ||g||, wn = ||w||, x = gn + decay*wn (x += eps when x < eps);
 *         local = lr when wn < eps, else lr*coefficient*wn/x;
 *         g <- g + decay*w (the gradient is changed in place, as NNabla does);
 *         v <- momentum*v + local*g;  w <- w - v
 *   Lamb  m <- b1*m + (1-b1)*g;  v <- b2*v + (1-b2)*g^2;
 *         r = (m/c1)/(sqrt(v/c2)+eps) + decay*w, c1 = 1-b1^t, c2 = 1-b2^t with
 *         bias_correction, else 1;  wn = clamp(||w||, gamma_l, gamma_u);
 *         local = wn/||r|| when ||r|| > eps, else 1;  w <- w - eta*local*r
 *         (r is recomputed in a second pass instead of being stored: no work array)
 */
#include "solver_kernel.h"

int nl_lars_update(nl_array *w, nl_array *g, nl_array *v, float lr, float momentum,
                   float coefficient, float eps, float decay) {
    float *pw, *pv;
    const float *pg0;
    if (nl_solver_ptrs("Lars", w, g, 1, &v, &pw, &pg0, &pv)) return -1;
    int64_t n = nl_array_size(w);
    double gs = 0, ws = 0;
    for (int64_t i = 0; i < n; i++) {
        gs += (double)pg0[i] * pg0[i];
        ws += (double)pw[i] * pw[i];
    }
    const float gn = (float)sqrt(gs), wn = (float)sqrt(ws);
    float x = gn + decay * wn;
    if (!(x >= 0))
        return nl_error("Lars update: the local learning rate would be negative or NaN "
                        "(gradient norm %g, weight norm %g, weight decay %g)", gn, wn, decay);
    if (x < eps) x += eps;
    const float local = wn < eps ? lr : lr * coefficient * wn / x;
    float *pg = nl_array_host(g, NL_READWRITE);
    if (!pg) return -1;
    for (int64_t i = 0; i < n; i++) {
        if (decay != 0) pg[i] += decay * pw[i];
        pv[i] = momentum * pv[i] + local * pg[i];
        pw[i] -= pv[i];
    }
    return 0;
}

int nl_lamb_update(nl_array *w, nl_array *g, nl_array *mean, nl_array *var, float eta,
                   float beta1, float beta2, float gamma_l, float gamma_u, float eps,
                   int bias_correction, float decay, int64_t t) {
    nl_array *st[2] = { mean, var };
    float *pw, *ps[2];
    const float *pg;
    if (t < 1) return nl_error("Lamb update: step count t must be at least 1, got %lld", (long long)t);
    if (nl_solver_ptrs("Lamb", w, g, 2, st, &pw, &pg, ps)) return -1;
    float *m = ps[0], *v = ps[1];
    const float c1 = bias_correction ? (float)(1 - pow((double)beta1, (double)t)) : 1.0f;
    const float c2 = bias_correction ? (float)(1 - pow((double)beta2, (double)t)) : 1.0f;
    int64_t n = nl_array_size(w);
    double rs = 0, ws = 0;
    for (int64_t i = 0; i < n; i++) {
        m[i] = beta1 * m[i] + (1 - beta1) * pg[i];
        v[i] = beta2 * v[i] + (1 - beta2) * pg[i] * pg[i];
        const float r = (m[i] / c1) / (sqrtf(v[i] / c2) + eps) + decay * pw[i];
        rs += (double)r * r;
        ws += (double)pw[i] * pw[i];
    }
    const float rn = (float)sqrt(rs);
    float wn = (float)sqrt(ws);
    if (wn < gamma_l) wn = gamma_l;
    if (wn > gamma_u) wn = gamma_u;
    const double local = rn > eps ? (double)(wn / rn) : 1.0;
    for (int64_t i = 0; i < n; i++) {
        const float r = (m[i] / c1) / (sqrtf(v[i] / c2) + eps) + decay * pw[i];
        pw[i] = (float)(pw[i] - eta * local * r);
    }
    return 0;
}
