/*
 * layers.cu - the layer functions on the "cuda" backend:
 *   affine          cuBLAS sgemm (row-major through the transposed trick) and sgemv
 *   convolution     im2col + cuBLAS sgemm per sample and group, col2im as a gather
 *   max_pooling, average_pooling   NNabla's exact windows (ignore_border, including_pad);
 *                   max keeps the argmax of each output; backward gathers (no atomics)
 *   batch_normalization            per-channel block reductions, NNabla's running
 *                   averages (decay_rate) with the unbiased variance, as normalization.c
 * The cuDNN implementations (cudnn.cu) fall back to these where cuDNN cannot do a case.
 *
 * Row-major matrices are column-major transposes: a row-major (r x c) array with leading
 * dimension c is the column-major (c x r) matrix, so y = x w (row-major) is computed as
 * y^T = w^T x^T in cuBLAS's terms.
 */
#include "layers.cuh"
#include <limits.h>
#include <math.h>

static const float k_one = 1.0f;

/* cuBLAS takes int sizes: larger ones would be truncated silently (a wrong product). */
static int gemm_fits(const char *who, int64_t a, int64_t b, int64_t c) {
    if (a > INT_MAX || b > INT_MAX || c > INT_MAX)
        return nl_error("%s: matrix sizes %lld x %lld x %lld exceed cuBLAS's int range", who, (long long)a,
                        (long long)b, (long long)c);
    return 0;
}

/* ---- affine ------------------------------------------------------------------------------ */

void nlc_affine_geometry(nl_func *f, affine_geom *g) {
    const nl_var *x = nl_in(f, 0), *w = nl_in(f, 1);
    int ba = 1;
    nl_norm_axis("base_axis", nl_arg_int(f, 0), x->ndim, &ba);   /* validated by setup */
    g->m = 1; g->k = 1; g->n = 1;
    for (int d = 0; d < ba; d++) g->m *= x->shape[d];
    for (int d = ba; d < x->ndim; d++) g->k *= x->shape[d];
    for (int d = 1; d < w->ndim; d++) g->n *= w->shape[d];
}

/* y (rows, n) = b broadcast over rows */
__global__ void k_rows_fill(int64_t rows, int64_t n, const float *b, float *y) {
    NLC_LOOP(i, rows * n) y[i] = b[i % n];
}

static int affine_forward(nl_func *f) {
    affine_geom g;
    nlc_affine_geometry(f, &g);
    const int dev = f->device_id;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(const float *, w, nlc_in(f, 1));
    NLC_PTR(float *, y, nlc_out(f, 0));
    if (gemm_fits("affine", g.m, g.k, g.n)) return -1;
    float beta = 0.0f;
    if (f->in[2]) {
        NLC_PTR(const float *, b, nlc_in(f, 2));
        if (g.m * g.n > 0) {
            k_rows_fill<<<nlc_blocks(g.m * g.n), NLC_THREADS>>>(g.m, g.n, b, y);
            NLC_LAUNCHED("affine (bias)");
        }
        beta = 1.0f;
    }
    if (g.m == 0 || g.n == 0) return 0;
    if (g.k == 0) return beta == 0.0f ? nlc_fill(dev, y, 0.0f, g.m * g.n) : 0;
    cublasHandle_t h = nlc_cublas(dev);
    if (!h) return -1;
    NLC_CUBLAS(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, (int)g.n, (int)g.m, (int)g.k, &k_one, w, (int)g.n, x,
                           (int)g.k, &beta, y, (int)g.n));
    return 0;
}

/* dx (m, k) = dy w^T; dw (k, n) = x^T dy; db (n) = column sums of dy */
static int affine_backward(nl_func *f, const bool *prop, const bool *accum) {
    affine_geom g;
    nlc_affine_geometry(f, &g);
    const bool pb = f->in[2] && prop[2];
    if (!prop[0] && !prop[1] && !pb) return 0;
    const int dev = f->device_id;
    if (gemm_fits("affine", g.m, g.k, g.n)) return -1;
    const int m = (int)g.m, k = (int)g.k, n = (int)g.n;
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    cublasHandle_t h = nlc_cublas(dev);
    if (!h) return -1;
    if (prop[0]) {
        NLC_PTR(const float *, w, nlc_in(f, 1));
        NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
        if (n == 0) {
            if (!accum[0] && nlc_fill(dev, dx, 0.0f, g.m * g.k)) return -1;
        } else if (m > 0 && k > 0) {
            const float beta = accum[0] ? 1.0f : 0.0f;
            NLC_CUBLAS(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, k, m, n, &k_one, w, n, dy, n, &beta, dx, k));
        }
    }
    if (prop[1]) {
        NLC_PTR(const float *, x, nlc_in(f, 0));
        NLC_PTR(float *, dw, nlc_in_grad(f, 1, accum[1]));
        if (m == 0) {
            if (!accum[1] && nlc_fill(dev, dw, 0.0f, g.k * g.n)) return -1;
        } else if (k > 0 && n > 0) {
            const float beta = accum[1] ? 1.0f : 0.0f;
            NLC_CUBLAS(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, n, k, m, &k_one, dy, n, x, k, &beta, dw, n));
        }
    }
    if (pb) {
        NLC_PTR(float *, db, nlc_in_grad(f, 2, accum[2]));
        if (m == 0) {
            if (!accum[2] && nlc_fill(dev, db, 0.0f, g.n)) return -1;
        } else if (n > 0) {
            NLC_PTR(const float *, ones, nlc_ones(dev, m));
            const float beta = accum[2] ? 1.0f : 0.0f;
            NLC_CUBLAS(cublasSgemv(h, CUBLAS_OP_N, n, m, &k_one, dy, n, ones, 1, &beta, db, 1));
        }
    }
    return 0;
}

/* ---- batch_matmul: cuBLAS, the CPU's row-major cblas calls mirrored ------------------- */

/* Row-major C (M x N) = op(A) (M x K) op(B) (K x N) + beta C, as cblas_sgemm(CblasRowMajor, ...)
 * computes it: cuBLAS (column-major) computes C^T = op(B)^T op(A)^T. */
static cublasStatus_t rm_gemm(cublasHandle_t h, bool ta, bool tb, int M, int N, int K, const float *A, int lda,
                              const float *B, int ldb, float beta, float *C, int ldc) {
    return cublasSgemm(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &k_one, B, ldb, A,
                       lda, &beta, C, ldc);
}

static cublasStatus_t rm_gemm_batched(cublasHandle_t h, bool ta, bool tb, int M, int N, int K, const float *A, int lda,
                                      long long sa, const float *B, int ldb, long long sb, float beta, float *C,
                                      int ldc, long long sc, int batches) {
    return cublasSgemmStridedBatched(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K,
                                     &k_one, B, ldb, sb, A, lda, sa, &beta, C, ldc, sc, batches);
}

/* the plan of matmul.c's setup: op(a) (P, Q), op(b) (Q, R); batch axes broadcast */
struct bmm_geom {
    int P, Q, R, lda, ldb;
    bool ta, tb;
    int nb;
    int64_t bshape[NL_MAX_NDIM], sa[NL_MAX_NDIM], sb[NL_MAX_NDIM];
    int64_t batches, amat, bmat;
};

static void bmm_geometry(nl_func *f, bmm_geom *g) {
    const nl_var *a = nl_in(f, 0), *b = nl_in(f, 1);
    g->ta = nl_arg_bool(f, 0);
    g->tb = nl_arg_bool(f, 1);
    const int64_t ar = a->shape[a->ndim - 2], ac = a->shape[a->ndim - 1];
    const int64_t br = b->shape[b->ndim - 2], bc = b->shape[b->ndim - 1];
    g->P = (int)(g->ta ? ac : ar);
    g->Q = (int)(g->ta ? ar : ac);
    g->R = (int)(g->tb ? br : bc);
    g->lda = (int)ac;
    g->ldb = (int)bc;
    g->amat = ar * ac;
    g->bmat = br * bc;
    const int na = a->ndim - 2, nbb = b->ndim - 2, nb = na > nbb ? na : nbb;
    g->nb = nb;
    int64_t sa = g->amat, sb = g->bmat;
    g->batches = 1;
    for (int k = nb - 1; k >= 0; k--) {
        const int ka = k - (nb - na), kb = k - (nb - nbb);
        const int64_t la = ka >= 0 ? a->shape[ka] : 1, lb = kb >= 0 ? b->shape[kb] : 1;
        g->bshape[k] = la == 1 ? lb : la;
        g->sa[k] = la == 1 ? 0 : sa;
        g->sb[k] = lb == 1 ? 0 : sb;
        sa *= la;
        sb *= lb;
        g->batches *= g->bshape[k];
    }
}

static void bmm_offsets(const bmm_geom &g, int64_t n, int64_t *oa, int64_t *ob) {
    *oa = *ob = 0;
    for (int k = g.nb - 1; k >= 0; k--) {
        const int64_t i = n % g.bshape[k];
        n /= g.bshape[k];
        *oa += i * g.sa[k];
        *ob += i * g.sb[k];
    }
}

/* a matrix stride that one strided-batched call can use: every batch its own matrix, or
 * one matrix for all; -1 for a mixed broadcast (then one GEMM per batch) */
static int64_t bmm_stride(int64_t size, int64_t mat, int64_t batches) {
    if (size == mat * batches) return mat;
    if (size == mat) return 0;
    return -1;
}

static int ldm(int n) { return n > 0 ? n : 1; }

/* the matrix sizes of a and b (the last two axes of each) as cuBLAS ints */
static int bmm_fits(nl_func *f) {
    const nl_var *a = nl_in(f, 0), *b = nl_in(f, 1);
    if (gemm_fits("batch_matmul", a->shape[a->ndim - 2], a->shape[a->ndim - 1], 1)) return -1;
    return gemm_fits("batch_matmul", b->shape[b->ndim - 2], b->shape[b->ndim - 1], 1);
}

static int bmm_forward(nl_func *f) {
    if (bmm_fits(f)) return -1;
    bmm_geom g;
    bmm_geometry(f, &g);
    const int dev = f->device_id;
    NLC_PTR(const float *, a, nlc_in(f, 0));
    NLC_PTR(const float *, b, nlc_in(f, 1));
    NLC_PTR(float *, y, nlc_out(f, 0));
    const int64_t ystep = (int64_t)g.P * g.R;
    if (ystep == 0 || g.batches == 0) return 0;
    if (g.Q == 0) return nlc_fill(dev, y, 0.0f, ystep * g.batches);
    cublasHandle_t h = nlc_cublas(dev);
    if (!h) return -1;
    const int64_t sa = bmm_stride(nl_in(f, 0)->size, g.amat, g.batches);
    const int64_t sb = bmm_stride(nl_in(f, 1)->size, g.bmat, g.batches);
    if (sa >= 0 && sb >= 0 && g.batches <= INT_MAX) {
        NLC_CUBLAS(rm_gemm_batched(h, g.ta, g.tb, g.P, g.R, g.Q, a, ldm(g.lda), sa, b, ldm(g.ldb), sb, 0.0f, y,
                                   ldm(g.R), ystep, (int)g.batches));
        return 0;
    }
    for (int64_t n = 0; n < g.batches; n++) {
        int64_t oa, ob;
        bmm_offsets(g, n, &oa, &ob);
        NLC_CUBLAS(rm_gemm(h, g.ta, g.tb, g.P, g.R, g.Q, a + oa, ldm(g.lda), b + ob, ldm(g.ldb), 0.0f, y + n * ystep,
                           ldm(g.R)));
    }
    return 0;
}

/* dop(a) = dy op(b)^T, dop(b) = op(a)^T dy, summed over the batches that reuse a matrix */
static int bmm_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0] && !prop[1]) return 0;
    if (bmm_fits(f)) return -1;
    bmm_geom g;
    bmm_geometry(f, &g);
    const int dev = f->device_id;
    const int P = g.P, Q = g.Q, R = g.R;
    const int64_t ystep = (int64_t)P * R;
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    cublasHandle_t h = nlc_cublas(dev);
    if (!h) return -1;
    const bool work = ystep > 0 && Q > 0 && g.batches > 0;
    for (int which = 0; which < 2; which++) {
        if (!prop[which]) continue;
        const nl_var *xv = nl_in(f, which);
        NLC_PTR(const float *, other, nlc_in(f, 1 - which));
        NLC_PTR(float *, dx, nlc_in_grad(f, which, accum[which]));
        const int64_t mat = which == 0 ? g.amat : g.bmat;
        const int64_t own = (xv->size == mat * g.batches && g.batches <= INT_MAX) ? mat : -1;
        const int64_t so = bmm_stride(nl_in(f, 1 - which)->size, which == 0 ? g.bmat : g.amat, g.batches);
        const bool batched = own >= 0 && so >= 0;
        /* batched: each batch writes its own block (beta = accum); otherwise blocks repeat:
         * clear once, then add batch by batch */
        if (!batched && !accum[which] && nlc_fill(dev, dx, 0.0f, xv->size)) return -1;
        if (!work) {
            if (batched && !accum[which] && nlc_fill(dev, dx, 0.0f, xv->size)) return -1;
            continue;
        }
        const float beta = batched ? (accum[which] ? 1.0f : 0.0f) : 1.0f;
        const int64_t nloop = batched ? 1 : g.batches;
        for (int64_t n = 0; n < nloop; n++) {
            int64_t oa = 0, ob = 0;
            if (!batched) bmm_offsets(g, n, &oa, &ob);
            const float *dyn = dy + n * ystep;
            const int cnt = batched ? (int)g.batches : 1;
            /* one GEMM per batch in the loop: the strides are not used */
            const long long sy = batched ? ystep : 0, so_ = batched ? so : 0, own_ = batched ? own : 0;
            cublasStatus_t s;
            if (which == 0) {
                const float *bn = other + ob;
                float *dan = dx + oa;
                if (!g.ta)   /* da (P, Q) = dy (P, R) op(b)^T (R, Q) */
                    s = rm_gemm_batched(h, false, !g.tb, P, Q, R, dyn, ldm(R), sy, bn, ldm(g.ldb), so_, beta, dan,
                                        ldm(g.lda), own_, cnt);
                else         /* da (Q, P) = op(b) (Q, R) dy^T (R, P) */
                    s = rm_gemm_batched(h, g.tb, true, Q, P, R, bn, ldm(g.ldb), so_, dyn, ldm(R), sy, beta, dan,
                                        ldm(g.lda), own_, cnt);
            } else {
                const float *an = other + oa;
                float *dbn = dx + ob;
                if (!g.tb)   /* db (Q, R) = op(a)^T (Q, P) dy (P, R) */
                    s = rm_gemm_batched(h, !g.ta, false, Q, R, P, an, ldm(g.lda), so_, dyn, ldm(R), sy, beta, dbn,
                                        ldm(g.ldb), own_, cnt);
                else         /* db (R, Q) = dy^T (R, P) op(a) (P, Q) */
                    s = rm_gemm_batched(h, true, g.ta, R, Q, P, dyn, ldm(R), sy, an, ldm(g.lda), so_, beta, dbn,
                                        ldm(g.ldb), own_, cnt);
            }
            if (s != CUBLAS_STATUS_SUCCESS) return nlc_cublas_err(s, "cublasSgemmStridedBatched (batch_matmul)");
        }
    }
    return 0;
}

/* ---- convolution (im2col + GEMM) -------------------------------------------------------- */

int nlc_conv_geometry(nl_func *f, conv_geom *g) {
    const nl_var *x = nl_in(f, 0), *w = nl_in(f, 1);
    int ca;
    if (nl_norm_axis("base_axis", nl_arg_int(f, 0), x->ndim, &ca)) return -1;
    const int sd = x->ndim - ca - 1, lead = 3 - sd;
    if (sd < 1 || sd > 3) return nl_error("%d spatial axes (1 to 3 are supported)", sd);
    g->sd = sd;
    for (int i = 0; i < 3; i++) {
        g->in[i] = g->out[i] = g->k[i] = g->stride[i] = g->dil[i] = 1;
        g->pad[i] = 0;
    }
    g->outer = 1;
    for (int d = 0; d < ca; d++) g->outer *= x->shape[d];
    g->c = x->shape[ca];
    g->oc = w->shape[0];
    g->group = nl_arg_int(f, 4);
    for (int i = 0; i < sd; i++) {
        const int j = lead + i;
        g->in[j] = x->shape[ca + 1 + i];
        g->k[j] = w->shape[2 + i];
        g->pad[j] = nl_arg_given(f, 1) ? nl_arg_at(f, 1, i) : 0;
        g->stride[j] = nl_arg_given(f, 2) ? nl_arg_at(f, 2, i) : 1;
        g->dil[j] = nl_arg_given(f, 3) ? nl_arg_at(f, 3, i) : 1;
        g->out[j] = (g->in[j] + 2 * g->pad[j] - (g->dil[j] * (g->k[j] - 1) + 1)) / g->stride[j] + 1;
    }
    g->ocg = g->oc / g->group;
    g->cg = g->c / g->group;
    g->kg = g->cg * g->k[0] * g->k[1] * g->k[2];
    g->p_in = g->in[0] * g->in[1] * g->in[2];
    g->p_out = g->out[0] * g->out[1] * g->out[2];
    return 0;
}

static bool conv_direct(const conv_geom &g) {
    for (int i = 0; i < 3; i++)
        if (g.k[i] != 1 || g.stride[i] != 1 || g.pad[i] != 0) return false;
    return true;
}

/* x: (C, I0, I1, I2) -> col: (C K0 K1 K2, O0 O1 O2), zeros where the window reads padding */
__global__ void k_im2col(conv_geom g, const float *__restrict__ x, float *__restrict__ col) {
    const int64_t P = g.p_out, rows = g.c * g.k[0] * g.k[1] * g.k[2];
    NLC_LOOP(idx, rows * P) {
        const int64_t p = idx % P, row = idx / P;
        const int64_t e = row % g.k[2], b = (row / g.k[2]) % g.k[1], a = (row / (g.k[2] * g.k[1])) % g.k[0];
        const int64_t c = row / (g.k[2] * g.k[1] * g.k[0]);
        const int64_t o2 = p % g.out[2], o1 = (p / g.out[2]) % g.out[1], o0 = p / (g.out[2] * g.out[1]);
        const int64_t i0 = o0 * g.stride[0] - g.pad[0] + a * g.dil[0];
        const int64_t i1 = o1 * g.stride[1] - g.pad[1] + b * g.dil[1];
        const int64_t i2 = o2 * g.stride[2] - g.pad[2] + e * g.dil[2];
        float v = 0.0f;
        if (i0 >= 0 && i0 < g.in[0] && i1 >= 0 && i1 < g.in[1] && i2 >= 0 && i2 < g.in[2])
            v = x[((c * g.in[0] + i0) * g.in[1] + i1) * g.in[2] + i2];
        col[idx] = v;
    }
}

/* col -> dx (C, I0, I1, I2): each input element gathers the column entries that read it */
template <bool ACC> __global__ void k_col2im(conv_geom g, const float *__restrict__ col, float *dx) {
    const int64_t P = g.p_out;
    NLC_LOOP(idx, g.c * g.p_in) {
        const int64_t i2 = idx % g.in[2], i1 = (idx / g.in[2]) % g.in[1], i0 = (idx / (g.in[2] * g.in[1])) % g.in[0];
        const int64_t c = idx / g.p_in;
        float s = 0.0f;
        for (int64_t a = 0; a < g.k[0]; a++) {
            const int64_t t0 = i0 + g.pad[0] - a * g.dil[0];
            if (t0 < 0 || t0 % g.stride[0]) continue;
            const int64_t o0 = t0 / g.stride[0];
            if (o0 >= g.out[0]) continue;
            for (int64_t b = 0; b < g.k[1]; b++) {
                const int64_t t1 = i1 + g.pad[1] - b * g.dil[1];
                if (t1 < 0 || t1 % g.stride[1]) continue;
                const int64_t o1 = t1 / g.stride[1];
                if (o1 >= g.out[1]) continue;
                for (int64_t e = 0; e < g.k[2]; e++) {
                    const int64_t t2 = i2 + g.pad[2] - e * g.dil[2];
                    if (t2 < 0 || t2 % g.stride[2]) continue;
                    const int64_t o2 = t2 / g.stride[2];
                    if (o2 >= g.out[2]) continue;
                    const int64_t row = ((c * g.k[0] + a) * g.k[1] + b) * g.k[2] + e;
                    s += col[row * P + (o0 * g.out[1] + o1) * g.out[2] + o2];
                }
            }
        }
        dx[idx] = ACC ? dx[idx] + s : s;
    }
}

/* y (outer, OC, P) = bias[oc] */
__global__ void k_bias_fill(int64_t outer, int64_t oc, int64_t P, const float *b, float *y) {
    NLC_LOOP(i, outer * oc * P) y[i] = b[(i / P) % oc];
}

int nlc_conv_cuda_forward(nl_func *f) {
    conv_geom g;
    if (nlc_conv_geometry(f, &g)) return -1;
    const int dev = f->device_id;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(const float *, w, nlc_in(f, 1));
    NLC_PTR(float *, y, nlc_out(f, 0));
    const int64_t ysz = g.oc * g.p_out, xsz = g.c * g.p_in;
    float beta = 0.0f;
    if (f->in[2]) {
        NLC_PTR(const float *, b, nlc_in(f, 2));
        if (g.outer * ysz > 0) {
            k_bias_fill<<<nlc_blocks(g.outer * ysz), NLC_THREADS>>>(g.outer, g.oc, g.p_out, b, y);
            NLC_LAUNCHED("convolution (bias)");
        }
        beta = 1.0f;
    }
    if (g.outer * ysz == 0) return 0;
    cublasHandle_t h = nlc_cublas(dev);
    if (!h) return -1;
    const bool direct = conv_direct(g);
    nlc_buf colb;
    float *col = nullptr;
    if (!direct) { col = colb.get(g.kg * g.group * g.p_out, dev); if (!col) return -1; }
    if (gemm_fits("convolution", g.p_out, g.ocg, g.kg)) return -1;
    const int P = (int)g.p_out, ocg = (int)g.ocg, kg = (int)g.kg;
    for (int64_t n = 0; n < g.outer; n++) {
        const float *xn = x + n * xsz;
        float *yn = y + n * ysz;
        if (!direct) {
            k_im2col<<<nlc_blocks(g.kg * g.group * g.p_out), NLC_THREADS>>>(g, xn, col);
            NLC_LAUNCHED("convolution (im2col)");
        }
        const float *cn = direct ? xn : col;
        for (int64_t gi = 0; gi < g.group; gi++)
            NLC_CUBLAS(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, P, ocg, kg, &k_one, cn + gi * g.kg * g.p_out, P,
                                   w + gi * g.ocg * g.kg, kg, &beta, yn + gi * g.ocg * g.p_out, P));
    }
    return 0;
}

int nlc_conv_cuda_backward(nl_func *f, const bool *prop, const bool *accum) {
    conv_geom g;
    if (nlc_conv_geometry(f, &g)) return -1;
    const bool pb = f->in[2] && prop[2];
    if (!prop[0] && !prop[1] && !pb) return 0;
    const int dev = f->device_id;
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    const int64_t ysz = g.oc * g.p_out, xsz = g.c * g.p_in;
    if (pb) {
        NLC_PTR(float *, db, nlc_in_grad(f, 2, accum[2]));
        const int64_t shape[3] = {g.outer, g.oc, g.p_out};
        const bool red[3] = {true, false, true};
        if (nlc_reduce(dev, dy, 3, shape, red, db, 1.0f, accum[2])) return -1;
    }
    if (!prop[0] && !prop[1]) return 0;
    cublasHandle_t h = nlc_cublas(dev);
    if (!h) return -1;
    const bool direct = conv_direct(g);
    nlc_buf colb;
    float *col = nullptr;
    if (!direct) { col = colb.get(g.kg * g.group * g.p_out, dev); if (!col) return -1; }
    if (gemm_fits("convolution", g.p_out, g.ocg, g.kg)) return -1;
    const int P = (int)g.p_out, ocg = (int)g.ocg, kg = (int)g.kg;
    if (prop[1]) {
        NLC_PTR(const float *, x, nlc_in(f, 0));
        NLC_PTR(float *, dw, nlc_in_grad(f, 1, accum[1]));
        if ((g.outer == 0 || P == 0) && !accum[1] && nlc_fill(dev, dw, 0.0f, g.oc * g.kg)) return -1;
        for (int64_t n = 0; n < g.outer && P > 0; n++) {
            const float *xn = x + n * xsz;
            if (!direct) {
                k_im2col<<<nlc_blocks(g.kg * g.group * g.p_out), NLC_THREADS>>>(g, xn, col);
                NLC_LAUNCHED("convolution (im2col)");
            }
            const float *cn = direct ? xn : col;
            const float beta = (n == 0 && !accum[1]) ? 0.0f : 1.0f;
            for (int64_t gi = 0; gi < g.group; gi++)
                NLC_CUBLAS(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, kg, ocg, P, &k_one, cn + gi * g.kg * g.p_out, P,
                                       dy + n * ysz + gi * g.ocg * g.p_out, P, &beta, dw + gi * g.ocg * g.kg, kg));
        }
    }
    if (prop[0]) {
        NLC_PTR(const float *, w, nlc_in(f, 1));
        NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
        if (P == 0) return accum[0] ? 0 : nlc_fill(dev, dx, 0.0f, g.outer * xsz);
        for (int64_t n = 0; n < g.outer; n++) {
            float *dxn = dx + n * xsz;
            const float *dyn = dy + n * ysz;
            float *dst = direct ? dxn : col;
            const float beta = (direct && accum[0]) ? 1.0f : 0.0f;
            for (int64_t gi = 0; gi < g.group; gi++)
                NLC_CUBLAS(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, P, kg, ocg, &k_one, dyn + gi * g.ocg * g.p_out, P,
                                       w + gi * g.ocg * g.kg, kg, &beta, dst + gi * g.kg * g.p_out, P));
            if (direct) continue;
            if (accum[0]) k_col2im<true><<<nlc_blocks(xsz), NLC_THREADS>>>(g, col, dxn);
            else k_col2im<false><<<nlc_blocks(xsz), NLC_THREADS>>>(g, col, dxn);
            NLC_LAUNCHED("convolution (col2im)");
        }
    }
    return 0;
}

/* ---- pooling -------------------------------------------------------------------------- */

int nlc_pool_geometry(nl_func *f, pool_geom *g) {
    const nl_var *x = nl_in(f, 0);
    const int sd = nl_arg_len(f, 0);
    if (sd < 1 || sd > 3 || sd > x->ndim) return nl_error("kernel has %d entries (1 to 3 are supported)", sd);
    const int first = x->ndim - sd, lead = 3 - sd;
    g->sd = sd;
    for (int i = 0; i < 3; i++) { g->in[i] = g->out[i] = g->k[i] = g->stride[i] = 1; g->pad[i] = 0; }
    g->ignore_border = nl_arg_bool(f, 2);
    g->maps = 1;
    for (int d = 0; d < first; d++) g->maps *= x->shape[d];
    for (int i = 0; i < sd; i++) {
        const int j = lead + i;
        const int64_t in = x->shape[first + i], k = nl_arg_at(f, 0, i);
        const int64_t s = nl_arg_given(f, 1) ? nl_arg_at(f, 1, i) : k;
        const int64_t p = nl_arg_given(f, 3) ? nl_arg_at(f, 3, i) : 0;
        g->in[j] = in;
        g->k[j] = k;
        g->stride[j] = s;
        g->pad[j] = p;
        g->out[j] = g->ignore_border ? (in + 2 * p - k) / s + 1 : (in + p - 1) / s + 1;
    }
    g->in_size = g->in[0] * g->in[1] * g->in[2];
    g->out_size = g->out[0] * g->out[1] * g->out[2];
    g->including_pad = f->def->n_args > 5 ? nl_arg_bool(f, 5) : true;
    return 0;
}

/* The window of output o per axis: [lo, hi) clipped to the input; returns its size before
 * clipping (to the padded extent) and the count of input cells in *inner (pooling.c). */
__device__ __forceinline__ int64_t pool_window(const pool_geom &g, const int64_t *o, int64_t *lo, int64_t *hi,
                                               int64_t *inner) {
    int64_t full = 1, in = 1;
    for (int a = 0; a < 3; a++) {
        int64_t s = o[a] * g.stride[a] - g.pad[a];
        int64_t e = s + g.k[a];
        if (e > g.in[a] + g.pad[a]) e = g.in[a] + g.pad[a];
        full *= e - s;
        if (s < 0) s = 0;
        if (e > g.in[a]) e = g.in[a];
        lo[a] = s;
        hi[a] = e;
        in *= e > s ? e - s : 0;
    }
    *inner = in;
    return full;
}

__device__ __forceinline__ void out_coords(const pool_geom &g, int64_t r, int64_t *o) {
    o[2] = r % g.out[2];
    o[1] = (r / g.out[2]) % g.out[1];
    o[0] = r / (g.out[2] * g.out[1]);
}

/* Outputs whose window may contain input coordinate i on axis a: [*lo, *hi] */
__device__ __forceinline__ void pool_candidates(const pool_geom &g, int a, int64_t i, int64_t *lo, int64_t *hi) {
    const int64_t num = i + g.pad[a] - g.k[a] + 1;
    *lo = num <= 0 ? 0 : (num + g.stride[a] - 1) / g.stride[a];
    int64_t h = (i + g.pad[a]) / g.stride[a];
    *hi = h < g.out[a] - 1 ? h : g.out[a] - 1;
}

__global__ void k_max_pool_fwd(pool_geom g, const float *__restrict__ x, float *y, int32_t *idx) {
    NLC_LOOP(k, g.maps * g.out_size) {
        const int64_t m = k / g.out_size;
        int64_t o[3], lo[3], hi[3], inner;
        out_coords(g, k - m * g.out_size, o);
        pool_window(g, o, lo, hi, &inner);
        const float *xm = x + m * g.in_size;
        if (inner == 0) { y[k] = 0.0f; idx[k] = -1; continue; }
        int64_t best = (lo[0] * g.in[1] + lo[1]) * g.in[2] + lo[2];
        float bv = xm[best];
        for (int64_t i0 = lo[0]; i0 < hi[0]; i0++)
            for (int64_t i1 = lo[1]; i1 < hi[1]; i1++) {
                const int64_t base = (i0 * g.in[1] + i1) * g.in[2];
                for (int64_t i2 = lo[2]; i2 < hi[2]; i2++)
                    if (bv < xm[base + i2]) { bv = xm[base + i2]; best = base + i2; }
            }
        y[k] = bv;
        idx[k] = (int32_t)best;
    }
}

template <bool ACC> __global__ void k_max_pool_bwd(pool_geom g, const int32_t *__restrict__ idx, const float *__restrict__ dy, float *dx) {
    NLC_LOOP(k, g.maps * g.in_size) {
        const int64_t m = k / g.in_size, r = k - m * g.in_size;
        const int64_t i[3] = {r / (g.in[2] * g.in[1]), (r / g.in[2]) % g.in[1], r % g.in[2]};
        int64_t lo[3], hi[3];
        for (int a = 0; a < 3; a++) pool_candidates(g, a, i[a], &lo[a], &hi[a]);
        const int32_t *im = idx + m * g.out_size;
        const float *dym = dy + m * g.out_size;
        float s = 0.0f;
        for (int64_t o0 = lo[0]; o0 <= hi[0]; o0++)
            for (int64_t o1 = lo[1]; o1 <= hi[1]; o1++)
                for (int64_t o2 = lo[2]; o2 <= hi[2]; o2++) {
                    const int64_t j = (o0 * g.out[1] + o1) * g.out[2] + o2;
                    if (im[j] == (int32_t)r) s += dym[j];
                }
        dx[k] = ACC ? dx[k] + s : s;
    }
}

__global__ void k_avg_pool_fwd(pool_geom g, const float *__restrict__ x, float *y) {
    NLC_LOOP(k, g.maps * g.out_size) {
        const int64_t m = k / g.out_size;
        int64_t o[3], lo[3], hi[3], inner;
        out_coords(g, k - m * g.out_size, o);
        const int64_t full = pool_window(g, o, lo, hi, &inner);
        const int64_t n = g.including_pad ? full : inner;
        const float *xm = x + m * g.in_size;
        float s = 0.0f;
        for (int64_t i0 = lo[0]; i0 < hi[0]; i0++)
            for (int64_t i1 = lo[1]; i1 < hi[1]; i1++) {
                const float *row = xm + (i0 * g.in[1] + i1) * g.in[2];
                for (int64_t i2 = lo[2]; i2 < hi[2]; i2++) s += row[i2];
            }
        y[k] = n > 0 ? s / (float)n : 0.0f;
    }
}

template <bool ACC> __global__ void k_avg_pool_bwd(pool_geom g, const float *__restrict__ dy, float *dx) {
    NLC_LOOP(k, g.maps * g.in_size) {
        const int64_t m = k / g.in_size, r = k - m * g.in_size;
        const int64_t i[3] = {r / (g.in[2] * g.in[1]), (r / g.in[2]) % g.in[1], r % g.in[2]};
        int64_t clo[3], chi[3];
        for (int a = 0; a < 3; a++) pool_candidates(g, a, i[a], &clo[a], &chi[a]);
        const float *dym = dy + m * g.out_size;
        float s = 0.0f;
        int64_t o[3];
        for (o[0] = clo[0]; o[0] <= chi[0]; o[0]++)
            for (o[1] = clo[1]; o[1] <= chi[1]; o[1]++)
                for (o[2] = clo[2]; o[2] <= chi[2]; o[2]++) {
                    int64_t lo[3], hi[3], inner;
                    const int64_t full = pool_window(g, o, lo, hi, &inner);
                    if (i[0] < lo[0] || i[0] >= hi[0] || i[1] < lo[1] || i[1] >= hi[1] || i[2] < lo[2] || i[2] >= hi[2])
                        continue;
                    const int64_t n = g.including_pad ? full : inner;
                    if (n > 0) s += dym[(o[0] * g.out[1] + o[1]) * g.out[2] + o[2]] / (float)n;
                }
        dx[k] = ACC ? dx[k] + s : s;
    }
}

int nlc_max_pool_cuda_forward(nl_func *f) {
    pool_geom g;
    if (nlc_pool_geometry(f, &g)) return -1;
    pool_state *st = nlc_state<pool_state>(f);
    if (!st) return -1;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(float *, y, nlc_out(f, 0));
    const int64_t n = g.maps * g.out_size;
    st->have_argmax = true;
    if (n == 0) return 0;
    NLC_PTR(float *, idx, st->argmax.get(n, f->device_id));
    k_max_pool_fwd<<<nlc_blocks(n), NLC_THREADS>>>(g, x, y, (int32_t *)(void *)idx);
    NLC_LAUNCHED("max_pooling");
    return 0;
}

int nlc_max_pool_cuda_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    pool_geom g;
    if (nlc_pool_geometry(f, &g)) return -1;
    pool_state *st = nlc_state<pool_state>(f);
    if (!st) return -1;
    if (!st->have_argmax) return nl_error("forward must run before backward");
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
    const int64_t n = g.maps * g.in_size;
    if (n == 0) return 0;
    if (g.maps * g.out_size == 0) return accum[0] ? 0 : nlc_fill(f->device_id, dx, 0.0f, n);
    const int32_t *idx = (const int32_t *)(const void *)st->argmax.p;
    if (accum[0]) k_max_pool_bwd<true><<<nlc_blocks(n), NLC_THREADS>>>(g, idx, dy, dx);
    else k_max_pool_bwd<false><<<nlc_blocks(n), NLC_THREADS>>>(g, idx, dy, dx);
    NLC_LAUNCHED("max_pooling");
    return 0;
}

int nlc_avg_pool_cuda_forward(nl_func *f) {
    pool_geom g;
    if (nlc_pool_geometry(f, &g)) return -1;
    NLC_PTR(const float *, x, nlc_in(f, 0));
    NLC_PTR(float *, y, nlc_out(f, 0));
    const int64_t n = g.maps * g.out_size;
    if (n == 0) return 0;
    k_avg_pool_fwd<<<nlc_blocks(n), NLC_THREADS>>>(g, x, y);
    NLC_LAUNCHED("average_pooling");
    return 0;
}

int nlc_avg_pool_cuda_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (!prop[0]) return 0;
    pool_geom g;
    if (nlc_pool_geometry(f, &g)) return -1;
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    NLC_PTR(float *, dx, nlc_in_grad(f, 0, accum[0]));
    const int64_t n = g.maps * g.in_size;
    if (n == 0) return 0;
    if (g.maps * g.out_size == 0) return accum[0] ? 0 : nlc_fill(f->device_id, dx, 0.0f, n);
    if (accum[0]) k_avg_pool_bwd<true><<<nlc_blocks(n), NLC_THREADS>>>(g, dy, dx);
    else k_avg_pool_bwd<false><<<nlc_blocks(n), NLC_THREADS>>>(g, dy, dx);
    NLC_LAUNCHED("average_pooling");
    return 0;
}

/* ---- batch normalization ------------------------------------------------------------------ */

void nlc_bn_geometry(nl_func *f, bn_geom *g) {
    const nl_var *x = nl_in(f, NLC_BN_X);
    const int nd = x->ndim, nk = nl_arg_len(f, 0);
    int lo = nd, hi = -1;
    for (int j = 0; j < nk; j++) {
        int a;
        if (nl_norm_axis("axes", nl_arg_at(f, 0, j), nd, &a)) continue;   /* validated by setup */
        if (a < lo) lo = a;
        if (a > hi) hi = a;
    }
    g->outer = 1; g->C = 1; g->inner = 1;
    for (int d = 0; d < nd; d++) {
        if (nk > 0 && d >= lo && d <= hi) g->C *= x->shape[d];
        else if (nk > 0 && d > hi) g->inner *= x->shape[d];
        else g->outer *= x->shape[d];
    }
}

/* Block c: batch mean and biased variance of channel c (two passes, as the CPU); saves
 * mean and 1/sqrt(var + eps); updates the running statistics when given. */
__global__ void k_bn_stats(bn_geom g, const float *__restrict__ x, float eps, float decay, float *rm, float *rv,
                           float *saved) {
    const int64_t c = blockIdx.x, n = g.outer * g.inner;
    __shared__ float mean_sh;
    float s = 0.0f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
        const int64_t o = j / g.inner, i = j - o * g.inner;
        s += x[(o * g.C + c) * g.inner + i];
    }
    s = nlc_block_sum(s);
    if (threadIdx.x == 0) mean_sh = s / (float)n;
    __syncthreads();
    const float m = mean_sh;
    float v = 0.0f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
        const int64_t o = j / g.inner, i = j - o * g.inner;
        const float d = x[(o * g.C + c) * g.inner + i] - m;
        v += d * d;
    }
    v = nlc_block_sum(v);
    if (threadIdx.x == 0) {
        const double var = (double)v / (double)n;
        const double unbias = n > 1 ? (double)n / (double)(n - 1) : 1.0;
        saved[c] = m;
        saved[g.C + c] = (float)(1.0 / sqrt(var + (double)eps));
        if (rm) rm[c] = (float)(decay * (double)rm[c] + (1.0 - decay) * (double)m);
        if (rv) rv[c] = (float)(decay * (double)rv[c] + (1.0 - decay) * var * unbias);
    }
}

/* per channel: scale = inv * gamma, shift = beta - mean * scale. inv = saved[C + c], or
 * 1/sqrt(var[c] + eps) when var (the running variance) is given. */
/* ss (3C) = [scale, center, shift]: y = (x - center) * scale + shift, the mean subtracted
 * first as normalization.c does (x * scale + (beta - mean * scale) loses the digits of a
 * small spread around a large mean) */
__global__ void k_bn_scale_shift(int64_t C, const float *mean, const float *inv, const float *var, float eps,
                                 const float *gamma, const float *beta, float *ss) {
    NLC_LOOP(c, C) {
        const float s = var ? (float)(1.0 / sqrt((double)var[c] + (double)eps)) : inv[c];
        ss[c] = s * (gamma ? gamma[c] : 1.0f);
        ss[C + c] = mean[c];
        ss[2 * C + c] = beta ? beta[c] : 0.0f;
    }
}

__global__ void k_bn_apply(bn_geom g, const float *__restrict__ x, const float *__restrict__ ss, float *y) {
    NLC_LOOP(k, g.outer * g.C * g.inner) {
        const int64_t c = (k / g.inner) % g.C;
        y[k] = (x[k] - ss[g.C + c]) * ss[c] + ss[2 * g.C + c];
    }
}

/* the running statistics, updated in place (NULL when absent) */
static int bn_running(nl_func *f, float **rm, float **rv) {
    *rm = *rv = nullptr;
    if (nl_in(f, NLC_BN_MEAN)) {
        *rm = (float *)nl_array_device(nl_in(f, NLC_BN_MEAN)->data, NL_READWRITE, f->device_id);
        if (!*rm) return -1;
    }
    if (nl_in(f, NLC_BN_VAR)) {
        *rv = (float *)nl_array_device(nl_in(f, NLC_BN_VAR)->data, NL_READWRITE, f->device_id);
        if (!*rv) return -1;
    }
    return 0;
}

static int opt_in(nl_func *f, int i, const float **p) {
    *p = nullptr;
    if (!nl_in(f, i)) return 0;
    *p = nlc_in(f, i);
    return *p ? 0 : -1;
}

int nlc_bn_cuda_forward(nl_func *f) {
    bn_geom g;
    nlc_bn_geometry(f, &g);
    const bool batch_stat = nl_arg_bool(f, 3);
    const float eps = (float)nl_arg_float(f, 2), decay = (float)nl_arg_float(f, 1);
    const int dev = f->device_id;
    bn_state *st = nlc_state<bn_state>(f);
    if (!st) return -1;
    const float *beta, *gamma;
    NLC_PTR(const float *, x, nlc_in(f, NLC_BN_X));
    if (opt_in(f, NLC_BN_BETA, &beta) || opt_in(f, NLC_BN_GAMMA, &gamma)) return -1;
    NLC_PTR(float *, y, nlc_out(f, 0));
    nlc_buf ssb;
    NLC_PTR(float *, ss, ssb.get(3 * g.C, dev));
    const int64_t n = g.outer * g.inner;
    if (batch_stat) {
        NLC_PTR(float *, saved, st->saved.get(2 * g.C, dev));
        st->have_saved = true;
        if (n == 0 || g.C == 0) return g.C ? nlc_fill(dev, saved, 0.0f, 2 * g.C) : 0;
        float *rm, *rv;
        if (bn_running(f, &rm, &rv)) return -1;
        if (g.C > INT_MAX) return nl_error("%lld channels are too many", (long long)g.C);
        k_bn_stats<<<(unsigned)g.C, NLC_THREADS>>>(g, x, (float)nl_arg_float(f, 2), decay, rm, rv, saved);
        NLC_LAUNCHED("batch_normalization (statistics)");
        k_bn_scale_shift<<<nlc_blocks(g.C), NLC_THREADS>>>(g.C, saved, saved + g.C, nullptr, eps, gamma, beta, ss);
    } else {
        NLC_PTR(const float *, rm, nlc_in(f, NLC_BN_MEAN));
        NLC_PTR(const float *, rv, nlc_in(f, NLC_BN_VAR));
        if (g.C == 0) return 0;
        k_bn_scale_shift<<<nlc_blocks(g.C), NLC_THREADS>>>(g.C, rm, nullptr, rv, eps, gamma, beta, ss);
    }
    NLC_LAUNCHED("batch_normalization");
    if (n * g.C == 0) return 0;
    k_bn_apply<<<nlc_blocks(n * g.C), NLC_THREADS>>>(g, x, ss, y);
    NLC_LAUNCHED("batch_normalization");
    return 0;
}

/* Block c: sums[c] = sum dy, sums[C + c] = s[c] * sum dy * (x - m[c]) */
__global__ void k_bn_bwd_sums(bn_geom g, const float *__restrict__ x, const float *__restrict__ dy, const float *m,
                              const float *s, float *sums) {
    const int64_t c = blockIdx.x, n = g.outer * g.inner;
    const float mc = m[c];
    float a = 0.0f, b = 0.0f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
        const int64_t o = j / g.inner, i = j - o * g.inner, k = (o * g.C + c) * g.inner + i;
        a += dy[k];
        b += dy[k] * (x[k] - mc);
    }
    a = nlc_block_sum(a);
    b = nlc_block_sum(b);
    if (threadIdx.x == 0) {
        sums[c] = a;
        sums[g.C + c] = b * s[c];
    }
}

/* dx = k0 dy + k1 xhat + k2 (batch_stat) or gamma * s * dy (running statistics) */
template <bool ACC>
__global__ void k_bn_bwd_dx(bn_geom g, const float *__restrict__ x, const float *__restrict__ dy, const float *m,
                            const float *s, const float *gamma, const float *sums, bool batch_stat, float *dx) {
    const int64_t n = g.outer * g.inner;
    NLC_LOOP(k, g.outer * g.C * g.inner) {
        const int64_t c = (k / g.inner) % g.C;
        const float gm = gamma ? gamma[c] : 1.0f, sc = s[c], mc = m[c];
        float k0 = gm * sc, k1 = 0.0f, k2 = 0.0f;
        if (batch_stat && n > 0) {
            k1 = (float)(-(double)gm * sc * sums[g.C + c] / (double)n);
            k2 = (float)(-(double)gm * sc * sums[c] / (double)n);
        }
        const float v = k0 * dy[k] + k1 * (x[k] - mc) * sc + k2;
        dx[k] = ACC ? dx[k] + v : v;
    }
}

struct bn_param_grads {
    float *p[4];          /* dbeta, dgamma, dmean, dvar (NULL: not propagated) */
    bool acc[4];
};

__global__ void k_bn_bwd_params(int64_t C, const float *sums, const float *gamma, const float *s, bool batch_stat,
                                bn_param_grads pg) {
    NLC_LOOP(c, C) {
        const double gm = gamma ? gamma[c] : 1.0, sc = s[c];
        const float v[4] = {
            sums[c], sums[C + c],
            batch_stat ? 0.0f : (float)(-gm * sc * sums[c]),
            batch_stat ? 0.0f : (float)(-0.5 * gm * sc * sc * sums[C + c]),
        };
        for (int j = 0; j < 4; j++) {
            if (!pg.p[j]) continue;
            if (j >= 2 && batch_stat) { if (!pg.acc[j]) pg.p[j][c] = 0.0f; continue; }
            pg.p[j][c] = pg.acc[j] ? pg.p[j][c] + v[j] : v[j];
        }
    }
}

__global__ void k_inv_std(int64_t C, const float *var, float eps, float *s) {
    NLC_LOOP(c, C) s[c] = (float)(1.0 / sqrt((double)var[c] + (double)eps));
}

int nlc_bn_cuda_backward(nl_func *f, const bool *prop, const bool *accum) {
    bool any = false;
    for (int i = 0; i < 5; i++) any |= prop[i] && nl_in(f, i);
    if (!any) return 0;
    bn_geom g;
    nlc_bn_geometry(f, &g);
    const bool batch_stat = nl_arg_bool(f, 3);
    const float eps = (float)nl_arg_float(f, 2);
    const int dev = f->device_id;
    bn_state *st = nlc_state<bn_state>(f);
    if (!st) return -1;
    const float *gamma;
    NLC_PTR(const float *, x, nlc_in(f, NLC_BN_X));
    NLC_PTR(const float *, dy, nlc_out_grad(f, 0));
    if (opt_in(f, NLC_BN_GAMMA, &gamma)) return -1;
    nlc_buf wsb;
    NLC_PTR(float *, ws, wsb.get(3 * g.C + 1, dev));
    float *sums = ws;                               /* 2C */
    const float *m, *s;
    if (batch_stat) {
        if (!st->have_saved || !st->saved.p) return nl_error("forward must run before backward");
        m = st->saved.p;
        s = st->saved.p + g.C;
    } else {
        NLC_PTR(const float *, rm, nlc_in(f, NLC_BN_MEAN));
        NLC_PTR(const float *, rv, nlc_in(f, NLC_BN_VAR));
        if (g.C > 0) {
            k_inv_std<<<nlc_blocks(g.C), NLC_THREADS>>>(g.C, rv, eps, ws + 2 * g.C);
            NLC_LAUNCHED("batch_normalization");
        }
        m = rm;
        s = ws + 2 * g.C;
    }
    const int64_t n = g.outer * g.inner, total = n * g.C;
    if (g.C > INT_MAX) return nl_error("%lld channels are too many", (long long)g.C);
    if (g.C > 0) {
        if (n > 0) {
            k_bn_bwd_sums<<<(unsigned)g.C, NLC_THREADS>>>(g, x, dy, m, s, sums);
            NLC_LAUNCHED("batch_normalization (backward sums)");
        } else if (nlc_fill(dev, sums, 0.0f, 2 * g.C)) {
            return -1;
        }
    }
    if (prop[NLC_BN_X]) {
        NLC_PTR(float *, dx, nlc_in_grad(f, NLC_BN_X, accum[NLC_BN_X]));
        if (total > 0) {
            if (accum[NLC_BN_X])
                k_bn_bwd_dx<true><<<nlc_blocks(total), NLC_THREADS>>>(g, x, dy, m, s, gamma, sums, batch_stat, dx);
            else
                k_bn_bwd_dx<false><<<nlc_blocks(total), NLC_THREADS>>>(g, x, dy, m, s, gamma, sums, batch_stat, dx);
            NLC_LAUNCHED("batch_normalization (backward)");
        }
    }
    return nlc_bn_param_grads(f, prop, accum, g.C, sums, s, gamma);
}

int nlc_bn_param_grads(nl_func *f, const bool *prop, const bool *accum, int64_t C, const float *sums,
                       const float *s, const float *gamma) {
    const bool batch_stat = nl_arg_bool(f, 3);
    bn_param_grads pg;
    bool params = false;
    for (int j = 0; j < 4; j++) {
        const int i = NLC_BN_BETA + j;
        pg.p[j] = nullptr;
        pg.acc[j] = accum[i];
        if (!prop[i] || !nl_in(f, i)) continue;
        if (j >= 2 && batch_stat && accum[i]) continue;   /* nothing to add */
        pg.p[j] = nlc_in_grad(f, i, accum[i]);
        if (!pg.p[j]) return -1;
        params = true;
    }
    if (params && C > 0) {
        k_bn_bwd_params<<<nlc_blocks(C), NLC_THREADS>>>(C, sums, gamma, s, batch_stat, pg);
        NLC_LAUNCHED("batch_normalization (parameter gradients)");
    }
    return 0;
}

int nlc_register_layers(void) {
    if (nlc_register("affine", "cuda", affine_forward, affine_backward)) return -1;
    if (nlc_register("batch_matmul", "cuda", bmm_forward, bmm_backward)) return -1;
    if (nlc_register("convolution", "cuda", nlc_conv_cuda_forward, nlc_conv_cuda_backward)) return -1;
    if (nlc_register("max_pooling", "cuda", nlc_max_pool_cuda_forward, nlc_max_pool_cuda_backward)) return -1;
    if (nlc_register("average_pooling", "cuda", nlc_avg_pool_cuda_forward, nlc_avg_pool_cuda_backward)) return -1;
    if (nlc_register("batch_normalization", "cuda", nlc_bn_cuda_forward, nlc_bn_cuda_backward)) return -1;
    return 0;
}
