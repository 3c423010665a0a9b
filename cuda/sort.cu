/*
 * sort.cu - the CUDA twin of indexing.c's sort: x viewed as (A, N, B) (the CPU setup's
 * sort_plan, index_plans.h, read from f->state) sorted along N, ascending or descending
 * (reverse), stable, NaN last, giving the values and/or the 1-based source positions as
 * floats (with_index, only_index) exactly as the CPU does.
 *
 * The order is index_plans.h's nl_sort_key, the key the CPU's qsort compares (then the
 * positions). Each element becomes a 64-bit key, sort key << 32 | its position along N, so
 * the keys of a line are distinct and any sort of them is the CPU's stable sort.
 *   - Lines of at most SORT_RANK elements: one thread per element counts the smaller keys
 *     of its line (its rank) and writes the output at that rank.
 *   - Longer lines: the keys are laid out line after line; each chunk of up to SORT_CHUNK
 *     keys is sorted in shared memory by a bitonic network (one block per chunk), then
 *     sorted runs are merged pairwise in global memory (one thread per key: its place is
 *     its place in its run plus the number of smaller keys in the partner run, found by
 *     binary search) until one run holds the line.
 * Forward keeps each output's source position per node; backward is that permutation:
 * dx[source] (+)= dy[output], one thread per output, no two threads on one element.
 */
#include "common.cuh"
extern "C" {
#include "index_plans.h"
}

enum { SORT_RANK = 64, SORT_CHUNK = 1024 };

/* The source position (along N) of each output, from the last forward. */
struct sort_dev {
    nlc_buf perm;        /* A*N*B int64 (two floats each) */
    int64_t n = -1;      /* elements of the last forward, -1 before any */
};

/* element e of x viewed as (A, N, B): its a, i (position along N), b */
__device__ __forceinline__ void sort_split(const sort_plan &p, int64_t e, int64_t *a, int64_t *i, int64_t *b) {
    *b = e % p.B;
    *i = (e / p.B) % p.N;
    *a = e / (p.N * p.B);
}

__device__ __forceinline__ unsigned long long sort_key64(float v, bool reverse, int64_t i) {
    return ((unsigned long long)nl_sort_key(v, reverse) << 32) | (unsigned long long)i;
}

/* x, perm, yv, yi (NULL: not wanted): (A, N, B); thread per element: its rank r among the
 * keys of its line; output (a, r, b): perm = the element's position i, yv = its value,
 * yi = i + 1 */
__global__ void k_sort_rank(sort_plan p, const float *__restrict__ x, int64_t *perm, float *yv, float *yi) {
    NLC_LOOP(e, p.A * p.N * p.B) {
        int64_t a, i, b;
        sort_split(p, e, &a, &i, &b);
        const float *line = x + a * p.N * p.B + b;
        const unsigned long long k = sort_key64(x[e], p.reverse, i);
        int64_t r = 0;
        for (int64_t j = 0; j < p.N; j++) r += sort_key64(line[j * p.B], p.reverse, j) < k;
        const int64_t o = (a * p.N + r) * p.B + b;
        perm[o] = i;
        if (yv) yv[o] = x[e];
        if (yi) yi[o] = (float)(i + 1);
    }
}

/* x: (A, N, B) -> keys: (A*B lines, N), line a*B + b */
__global__ void k_sort_keys(sort_plan p, const float *__restrict__ x, unsigned long long *keys) {
    NLC_LOOP(e, p.A * p.N * p.B) {
        int64_t a, i, b;
        sort_split(p, e, &a, &i, &b);
        keys[(a * p.B + b) * p.N + i] = sort_key64(x[e], p.reverse, i);
    }
}

/* keys: (lines, N); block per chunk of P keys of a line (P a power of two, at most
 * SORT_CHUNK; the last chunk of a line may be shorter): the chunk sorted ascending in
 * shared memory by a bitonic network over P slots (the missing ones all-ones keys) */
__global__ void k_sort_chunks(int64_t lines, int64_t N, int P, unsigned long long *keys) {
    __shared__ unsigned long long sh[SORT_CHUNK];
    const int64_t per = (N + P - 1) / P;
    for (int64_t c = blockIdx.x; c < lines * per; c += gridDim.x) {
        const int64_t l = c / per, start = (c - l * per) * P;
        const int len = (int)(N - start < P ? N - start : P);
        unsigned long long *k = keys + l * N + start;
        for (int t = threadIdx.x; t < P; t += blockDim.x) sh[t] = t < len ? k[t] : ~0ull;
        __syncthreads();
        for (int size = 2; size <= P; size <<= 1)
            for (int stride = size >> 1; stride > 0; stride >>= 1) {
                for (int t = threadIdx.x; t < P; t += blockDim.x) {
                    const int u = t ^ stride;
                    if (u > t) {
                        const unsigned long long lo = sh[t], hi = sh[u];
                        if ((lo > hi) == ((t & size) == 0)) { sh[t] = hi; sh[u] = lo; }
                    }
                }
                __syncthreads();
            }
        for (int t = threadIdx.x; t < len; t += blockDim.x) k[t] = sh[t];
        __syncthreads();   /* sh is reused by the block's next chunk */
    }
}

/* src -> dst: (lines, N), each line sorted in runs of w; thread per key: runs 2r and 2r+1
 * merged into one (a key's place: its index in its run + the number of smaller keys in
 * the partner run) */
__global__ void k_sort_merge(int64_t lines, int64_t N, int64_t w, const unsigned long long *__restrict__ src,
                             unsigned long long *__restrict__ dst) {
    NLC_LOOP(e, lines * N) {
        const int64_t l = e / N, p = e - l * N, r = p / w, start = r * w;
        const unsigned long long *line = src + l * N, k = src[e];
        int64_t ps, plen, first;
        if (r & 1) {
            ps = start - w;
            plen = w;
            first = ps;
        } else {
            ps = start + w;
            plen = N - ps < w ? N - ps : w;
            if (plen < 0) plen = 0;
            first = start;
        }
        int64_t lo = 0, hi = plen;   /* keys of the partner run below k */
        while (lo < hi) {
            const int64_t mid = lo + (hi - lo) / 2;
            if (line[ps + mid] < k) lo = mid + 1;
            else hi = mid;
        }
        dst[l * N + first + (p - start) + lo] = k;
    }
}

/* keys: (lines, N) sorted; thread per output (line l = a*B + b, rank r): output (a, r, b)
 * gets the key's position i: perm = i, yv = x at (a, i, b), yi = i + 1 */
__global__ void k_sort_out(sort_plan p, const unsigned long long *__restrict__ keys, const float *__restrict__ x,
                           int64_t *perm, float *yv, float *yi) {
    NLC_LOOP(e, p.A * p.B * p.N) {
        const int64_t l = e / p.N, r = e - l * p.N, a = l / p.B, b = l - a * p.B;
        const int64_t i = (int64_t)(keys[e] & 0xffffffffull), o = (a * p.N + r) * p.B + b;
        perm[o] = i;
        if (yv) yv[o] = x[(a * p.N + i) * p.B + b];
        if (yi) yi[o] = (float)(i + 1);
    }
}

/* dy, perm: (A, N, B); dx: (A, N, B): dx at (a, perm, b) = dy at (a, r, b), added when
 * ACC (each element of dx is one output's source) */
template <bool ACC>
__global__ void k_sort_bwd(sort_plan p, const int64_t *__restrict__ perm, const float *__restrict__ dy, float *dx) {
    NLC_LOOP(o, p.A * p.N * p.B) {
        int64_t a, r, b;
        sort_split(p, o, &a, &r, &b);
        const int64_t k = (a * p.N + perm[o]) * p.B + b;
        dx[k] = (ACC ? dx[k] : 0.0f) + dy[o];
    }
}

static unsigned chunk_grid(int64_t chunks) {
    return (unsigned)(chunks < 1 ? 1 : chunks > (1 << 20) ? (1 << 20) : chunks);
}

static int sort_forward(nl_func *f) {
    const sort_plan *p = (const sort_plan *)f->state;
    const int dev = f->device_id;
    sort_dev *st = nlc_state<sort_dev>(f);
    if (!st) return -1;
    st->n = -1;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    float *yv = nullptr, *yi = nullptr;
    if (p->n_val >= 0) { NLC_PTR(float *, t, nlc_out(f, p->n_val)); yv = t; }
    if (p->n_idx >= 0) { NLC_PTR(float *, t, nlc_out(f, p->n_idx)); yi = t; }
    const int64_t total = p->A * p->N * p->B, lines = p->A * p->B, N = p->N;
    if (total == 0) { st->n = 0; return 0; }
    if (N > 0xfffffffell)
        return nl_error("%lld elements along the axis are more than the CUDA sort handles (%lld)", (long long)N,
                        0xfffffffell);
    NLC_PTR(float *, pf, st->perm.get(2 * total, dev));
    int64_t *perm = (int64_t *)(void *)pf;
    if (nlc_set_device(dev)) return -1;
    if (N <= SORT_RANK) {
        k_sort_rank<<<nlc_blocks(total), NLC_THREADS>>>(*p, x, perm, yv, yi);
        NLC_LAUNCHED("sort");
        st->n = total;
        return 0;
    }
    nlc_buf kbuf;   /* two key buffers of total each */
    NLC_PTR(float *, kf, kbuf.get(4 * total, dev));
    unsigned long long *k0 = (unsigned long long *)(void *)kf, *k1 = k0 + total;
    k_sort_keys<<<nlc_blocks(total), NLC_THREADS>>>(*p, x, k0);
    NLC_LAUNCHED("sort (keys)");
    int P = SORT_CHUNK;
    while (P / 2 >= N) P /= 2;
    k_sort_chunks<<<chunk_grid(lines * ((N + P - 1) / P)), NLC_THREADS>>>(lines, N, P, k0);
    NLC_LAUNCHED("sort (chunks)");
    for (int64_t w = P; w < N; w *= 2) {
        k_sort_merge<<<nlc_blocks(total), NLC_THREADS>>>(lines, N, w, k0, k1);
        NLC_LAUNCHED("sort (merge)");
        unsigned long long *t = k0;
        k0 = k1;
        k1 = t;
    }
    k_sort_out<<<nlc_blocks(total), NLC_THREADS>>>(*p, k0, x, perm, yv, yi);
    NLC_LAUNCHED("sort");
    st->n = total;
    return 0;
}

/* only_index: the indices carry no gradient (x's is zero) */
static int sort_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    const sort_plan *p = (const sort_plan *)f->state;
    NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
    if (p->n_val < 0) return nlc_clear_grad(f, dx, 0, accum[0]);
    const int64_t total = p->A * p->N * p->B;
    if (total == 0) return 0;
    sort_dev *st = nlc_state<sort_dev>(f);
    if (!st) return -1;
    if (st->n != total || !st->perm.p) return nl_error("forward must run before backward");
    NLC_PTR(const float *, dy, nlc_out_grad(f, p->n_val));
    if (nlc_set_device(f->device_id)) return -1;
    const int64_t *perm = (const int64_t *)(void *)st->perm.p;
    if (accum[0]) k_sort_bwd<true><<<nlc_blocks(total), NLC_THREADS>>>(*p, perm, dy, dx);
    else k_sort_bwd<false><<<nlc_blocks(total), NLC_THREADS>>>(*p, perm, dy, dx);
    NLC_LAUNCHED("sort (backward)");
    return 0;
}

int nlc_register_sort(void) { return nlc_register("sort", "cuda", sort_forward, sort_backward); }
