/*
 * sgd.c - plain SGD (NNabla's Sgd): w <- w - lr * g, and the shared weight decay
 * g <- g + decay * w. The Lua solver skips parameters whose grad is lazily zero.
 */
#include "internal.h"

int nl_sgd_update(nl_array *w, nl_array *g, float lr) {
    if (nl_array_size(w) != nl_array_size(g))
        return nl_error("sgd update: parameter has %lld elements, gradient %lld",
                        (long long)nl_array_size(w), (long long)nl_array_size(g));
    const float *pg = nl_array_host(g, NL_READ);
    float *pw = pg ? nl_array_host(w, NL_READWRITE) : NULL;
    if (!pw) return -1;
    int64_t n = nl_array_size(w);
    for (int64_t i = 0; i < n; i++) pw[i] -= lr * pg[i];
    return 0;
}

int nl_weight_decay(nl_array *w, nl_array *g, float decay) {
    if (decay == 0.0f) return 0;
    return nl_axpy(g, decay, w);
}
