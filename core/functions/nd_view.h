/*
 * nd_view.h - index helpers shared by the array, indexing and reduction functions.
 *
 * nl_view: a strided view of a buffer; element (i_0, ..., i_{nd-1}) sits at
 *   base + sum_k i_k * stride[k]. Strides may be 0 (broadcast) or negative (flip); up to
 *   2 * NL_MAX_NDIM axes (tile interleaves repeat and data axes). nl_view_run walks the
 *   view in row-major order against a contiguous buffer, gathering (dst[j] = src[off(j)])
 *   or scattering (dst[off(j)] = src[j]), writing or adding. Transpose, broadcast,
 *   broadcast_to, tile, flip, concatenate, split, stack and the diagonal functions are
 *   views, and each backward is the same view run the other way.
 *
 * nl_tabmap: per-axis offset tables (tab[k][i] = source offset contributed by output
 *   position i on axis k, or -1 for "outside": the constant). Pad and shift are tables.
 */
#ifndef NNLUA_ND_VIEW_H
#define NNLUA_ND_VIEW_H
#include "../src/function.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { NL_VIEW_MAX = 2 * NL_MAX_NDIM };

typedef struct nl_view {
    int nd;
    int64_t shape[NL_VIEW_MAX];
    int64_t stride[NL_VIEW_MAX];
    int64_t base;
} nl_view;

/* Row-major (contiguous) strides of a shape. */
static inline void nl_row_strides(int nd, const int64_t *shape, int64_t *stride) {
    int64_t s = 1;
    for (int k = nd - 1; k >= 0; k--) { stride[k] = s; s *= shape[k]; }
}

static inline int64_t nl_shape_size(int nd, const int64_t *shape) {
    int64_t s = 1;
    for (int k = 0; k < nd; k++) s *= shape[k];
    return s;
}

/* Drops size-1 axes and merges neighbours that are contiguous within the view (the
 * row-major walk order is unchanged). An empty view is left alone. */
static inline void nl_view_simplify(nl_view *v) {
    for (int k = 0; k < v->nd; k++)
        if (v->shape[k] == 0) return;
    int n = 0;
    for (int k = 0; k < v->nd; k++) {
        if (v->shape[k] == 1) continue;
        if (n > 0 && v->stride[n - 1] == v->stride[k] * v->shape[k]) {
            v->shape[n - 1] *= v->shape[k];
            v->stride[n - 1] = v->stride[k];
            continue;
        }
        v->shape[n] = v->shape[k];
        v->stride[n] = v->stride[k];
        n++;
    }
    v->nd = n;
}

/* scatter = false: dst[j] (+)= src[off(j)]; scatter = true: dst[off(j)] (+)= src[j];
 * j runs over the view's elements in row-major order. */
static inline void nl_view_run(const nl_view *v, const float *src, float *dst, bool scatter, bool add) {
    const int nd = v->nd;
    int64_t total = 1;
    for (int k = 0; k < nd; k++) total *= v->shape[k];
    if (total == 0) return;
    if (nd == 0) {
        float *d = scatter ? dst + v->base : dst;
        const float s = scatter ? src[0] : src[v->base];
        *d = add ? *d + s : s;
        return;
    }
    const int last = nd - 1;
    const int64_t run = v->shape[last], st = v->stride[last];
    int64_t idx[NL_VIEW_MAX] = {0};
    int64_t off = v->base;
    for (int64_t j = 0; j < total; j += run) {
        if (!scatter) {
            float *d = dst + j;
            const float *s = src + off;
            if (add) for (int64_t r = 0; r < run; r++) d[r] += s[r * st];
            else if (st == 1) memcpy(d, s, (size_t)run * sizeof(float));
            else for (int64_t r = 0; r < run; r++) d[r] = s[r * st];
        } else {
            const float *s = src + j;
            float *d = dst + off;
            if (add) for (int64_t r = 0; r < run; r++) d[r * st] += s[r];
            else if (st == 1) memcpy(d, s, (size_t)run * sizeof(float));
            else for (int64_t r = 0; r < run; r++) d[r * st] = s[r];
        }
        for (int k = last - 1; k >= 0; k--) {
            off += v->stride[k];
            if (++idx[k] < v->shape[k]) break;
            off -= v->stride[k] * v->shape[k];
            idx[k] = 0;
        }
    }
}

/* ---- the plans of the view functions (array_ops.c), read by the CUDA twins too ---- */

/* concatenate, stack: one view per input into the output; split: one per output into x */
typedef struct multi_plan {
    int n;               /* inputs (concatenate, stack) or outputs (split) */
    nl_view view[];      /* one view per input / output */
} multi_plan;

/* transpose, broadcast, broadcast_to, tile, flip, matrix_diag, matrix_diag_part */
typedef struct view_plan {
    nl_view view;       /* over the input being read (x, or y for broadcast_to) */
    int src;            /* which input the view reads */
    bool injective;     /* each source element is read at most once (transpose, flip) */
} view_plan;

/* ---- offset tables ---- */

typedef struct nl_tabmap {
    int nd;
    int64_t shape[NL_MAX_NDIM];   /* output shape */
    int64_t *tab[NL_MAX_NDIM];    /* tab[k][i]: source offset part, -1 = outside */
    int64_t *mem;                 /* one block holding every table */
} nl_tabmap;

/* Allocates the tables for an output shape; fill tab[k][i] afterwards. */
static inline int nl_tabmap_init(nl_tabmap *m, int nd, const int64_t *shape) {
    int64_t total = 0;
    for (int k = 0; k < nd; k++) total += shape[k];
    m->nd = nd;
    m->mem = (int64_t *)malloc((size_t)(total > 0 ? total : 1) * sizeof(int64_t));
    if (!m->mem) return nl_error("out of memory");
    int64_t at = 0;
    for (int k = 0; k < nd; k++) {
        m->shape[k] = shape[k];
        m->tab[k] = m->mem + at;
        at += shape[k];
    }
    return 0;
}

static inline void nl_tabmap_free(nl_tabmap *m) { free(m->mem); m->mem = NULL; }

/* forward: y[j] = x[off(j)] (or value where outside). */
static inline void nl_tabmap_gather(const nl_tabmap *m, const float *x, float *y, float value) {
    const int nd = m->nd;
    int64_t total = nl_shape_size(nd, m->shape);
    if (total == 0) return;
    if (nd == 0) { y[0] = x[0]; return; }
    const int last = nd - 1;
    const int64_t run = m->shape[last];
    const int64_t *tl = m->tab[last];
    int64_t idx[NL_MAX_NDIM] = {0};
    for (int64_t j = 0; j < total; j += run) {
        int64_t base = 0;
        bool outside = false;
        for (int k = 0; k < last; k++) {
            int64_t t = m->tab[k][idx[k]];
            if (t < 0) outside = true;
            base += t;
        }
        float *d = y + j;
        if (outside) for (int64_t r = 0; r < run; r++) d[r] = value;
        else for (int64_t r = 0; r < run; r++) d[r] = tl[r] < 0 ? value : x[base + tl[r]];
        for (int k = last - 1; k >= 0; k--) {
            if (++idx[k] < m->shape[k]) break;
            idx[k] = 0;
        }
    }
}

/* backward: dx[off(j)] += dy[j] (outside positions contribute nothing). */
static inline void nl_tabmap_scatter_add(const nl_tabmap *m, const float *dy, float *dx) {
    const int nd = m->nd;
    int64_t total = nl_shape_size(nd, m->shape);
    if (total == 0) return;
    if (nd == 0) { dx[0] += dy[0]; return; }
    const int last = nd - 1;
    const int64_t run = m->shape[last];
    const int64_t *tl = m->tab[last];
    int64_t idx[NL_MAX_NDIM] = {0};
    for (int64_t j = 0; j < total; j += run) {
        int64_t base = 0;
        bool outside = false;
        for (int k = 0; k < last; k++) {
            int64_t t = m->tab[k][idx[k]];
            if (t < 0) outside = true;
            base += t;
        }
        if (!outside) {
            const float *g = dy + j;
            for (int64_t r = 0; r < run; r++)
                if (tl[r] >= 0) dx[base + tl[r]] += g[r];
        }
        for (int k = last - 1; k >= 0; k--) {
            if (++idx[k] < m->shape[k]) break;
            idx[k] = 0;
        }
    }
}

/* Zeroes a gradient buffer unless it accumulates (write-only buffers hold garbage). */
static inline void nl_grad_clear(float *dx, int64_t n, bool accum) {
    if (!accum && n > 0) memset(dx, 0, (size_t)n * sizeof(float));
}

/* Reads an index stored as a float: Lua positions 1..n or -n..-1. Writes the 0-based
 * position or fails naming the input, the position in it, the axis and its size. */
static inline int nl_read_index(float v, int64_t n, const char *input, int64_t pos, int axis, int64_t *out) {
    double d = v;
    if (!isfinite(d) || d != floor(d) || fabs(d) > 9e15)
        return nl_error("'%s' entry %lld is %g, not an integer position", input, (long long)(pos + 1), d);
    int64_t i = (int64_t)d;
    if (n == 0)
        return nl_error("'%s' entry %lld is %lld, but axis %d has size 0 (no position is valid)",
                        input, (long long)(pos + 1), (long long)i, axis + 1);
    if (i == 0 || i > n || i < -n)
        return nl_error("'%s' entry %lld is %lld, out of range for axis %d of size %lld (positions are 1..%lld or -%lld..-1)",
                        input, (long long)(pos + 1), (long long)i, axis + 1, (long long)n, (long long)n, (long long)n);
    *out = i > 0 ? i - 1 : n + i;
    return 0;
}

#endif
