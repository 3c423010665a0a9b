/*
 * pool_geometry.h - shared by the windowed poolings (pooling.c: max/average_pooling,
 * pooling_ext.c: sum_pooling): per-axis kernel/stride/pad checks and the output size
 * with NNabla's formulas (see pooling.c's header comment), with the same messages.
 * The last sd axes of x are pooled; the geometry is right-aligned in NL_POOL_SD slots
 * (leading unused slots are 1, pad 0).
 */
#ifndef NNLUA_POOL_GEOMETRY_H
#define NNLUA_POOL_GEOMETRY_H
#include "../src/function.h"

enum { NL_POOL_SD = 3 };

typedef struct nl_pool_geom {
    int64_t maps;                       /* prod of the axes before the pooled ones */
    int64_t in[NL_POOL_SD], out[NL_POOL_SD], k[NL_POOL_SD], stride[NL_POOL_SD], pad[NL_POOL_SD];
    int64_t in_size, out_size;          /* per map */
    int64_t oshape[NL_MAX_NDIM];        /* y's shape */
} nl_pool_geom;

/* Fills g for x (shape string xs) pooled over its last sd axes, from the kernel / stride /
 * pad arguments (indices a_kernel, a_stride, a_pad; the counts must already be checked).
 * stride defaults to kernel, pad to 0. Returns nonzero (error set) on a bad entry. */
static inline int nl_pool_geometry(nl_func *f, const nl_var *x, const char *xs, int sd,
                                   int a_kernel, int a_stride, int a_pad, bool ignore_border,
                                   nl_pool_geom *g) {
    for (int i = 0; i < NL_POOL_SD; i++) {
        g->in[i] = g->out[i] = g->k[i] = g->stride[i] = 1;
        g->pad[i] = 0;
    }
    const int first = x->ndim - sd, lead = NL_POOL_SD - sd;
    g->maps = 1;
    for (int d = 0; d < first; d++) g->maps *= x->shape[d];
    for (int d = 0; d < first; d++) g->oshape[d] = x->shape[d];
    for (int i = 0; i < sd; i++) {
        const int64_t in = x->shape[first + i], k = nl_arg_at(f, a_kernel, i);
        const int64_t s = nl_arg_given(f, a_stride) ? nl_arg_at(f, a_stride, i) : k;
        const int64_t p = nl_arg_given(f, a_pad) ? nl_arg_at(f, a_pad, i) : 0;
        if (k < 1) return nl_error("kernel entry %d is %lld (must be 1 or more)", i + 1, (long long)k);
        if (s < 1) return nl_error("stride entry %d is %lld (must be 1 or more)", i + 1, (long long)s);
        if (p < 0) return nl_error("pad entry %d is %lld (must be 0 or more)", i + 1, (long long)p);
        if (in < 1) return nl_error("x %s has size %lld at axis %d (pooling needs 1 or more)",
                                    xs, (long long)in, first + i + 1);
        int64_t o;
        if (ignore_border) {
            if (in + 2 * p < k)
                return nl_error("kernel %lld is larger than the padded input %lld (x size %lld + "
                                "2*pad %lld) at axis %d of x %s (ignore_border = true)",
                                (long long)k, (long long)(in + 2 * p), (long long)in,
                                (long long)p, first + i + 1, xs);
            o = (in + 2 * p - k) / s + 1;
        } else {
            o = (in + p - 1) / s + 1;
        }
        g->oshape[first + i] = o;
        g->in[lead + i] = in;
        g->out[lead + i] = o;
        g->k[lead + i] = k;
        g->stride[lead + i] = s;
        g->pad[lead + i] = p;
    }
    /* huge pads make y's size overflow int64: refuse before multiplying */
    double ysize = (double)g->maps;
    for (int i = 0; i < NL_POOL_SD; i++) ysize *= (double)g->out[i];
    if (ysize > NL_MAX_ELEMENTS) {
        char ys[160];
        return nl_error("y %s (x %s pooled with these kernel / stride / pad) has too many elements (at most 2^48)",
                        nl_shape_str(ys, x->ndim, g->oshape), xs);
    }
    g->in_size = g->out_size = 1;
    for (int i = 0; i < NL_POOL_SD; i++) { g->in_size *= g->in[i]; g->out_size *= g->out[i]; }
    return 0;
}

/* Work per map for nl_parallel_for: out_size * prod(k), saturated (kernels up to 2^31 - 1
 * over a padded input would overflow int64). */
static inline int64_t nl_pool_work(int64_t out_size, const int64_t *k) {
    double w = (double)out_size * (double)k[0] * (double)k[1] * (double)k[2];
    return w > 0x1p62 ? (int64_t)1 << 62 : (int64_t)w;
}

/* Copies the geometry fields of g into a state struct st with the same field names. */
#define NL_POOL_GEOM_COPY(st, g) do {                                     \
        (st).maps = (g).maps;                                             \
        memcpy((st).in, (g).in, sizeof (st).in);                          \
        memcpy((st).out, (g).out, sizeof (st).out);                       \
        memcpy((st).k, (g).k, sizeof (st).k);                             \
        memcpy((st).stride, (g).stride, sizeof (st).stride);              \
        memcpy((st).pad, (g).pad, sizeof (st).pad);                       \
        (st).in_size = (g).in_size; (st).out_size = (g).out_size;         \
    } while (0)

#endif
