/*
 * blas.c - the engine's one door to OpenBLAS's sgemm (row-major). It decides how many
 * threads a product gets: OpenBLAS threads every product above ~2.6e5 multiply-adds, but
 * on two cores a product with few output columns or little work runs slower threaded than
 * on one thread (measured with OpenBLAS 0.3.21: 128x10x1024 75 us on one thread against
 * 82-215 us on two; 256x10x500 51 against 190; 128x32x1024 108 against 216), so those
 * run on the calling thread and the thread count is put back afterwards. A product with
 * many rows is split by rows into one block per thread, each a single-threaded sgemm (BLAS
 * inside a parallel region runs on one thread): that beats OpenBLAS's own threading on two
 * cores, by most where k is small as in weight gradients (min of 25 runs, GFLOP/s, OpenBLAS
 * threaded against split: dW 1024x1024x128 119 vs 158, 784x1024x128 123 vs 157,
 * 800x500x64 94 vs 157, 1024x1024x1024 158 vs 172); with few rows (a batch of 128) the
 * blocks get too thin and OpenBLAS's threading is kept. A product with beta 0 clears C
 * with memset and runs with beta 1: OpenBLAS's own beta-0 pass (sgemm_beta) is slower than
 * memset (Zen 3, 1 thread, split on 2: dW 1024x1024x128 3208 -> 2975 us on one thread,
 * 1643 -> 1520 us on two; the MLP 784-1024-1024-10 trains 2-4% faster).
 */
#include "function.h"
#include <cblas.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* a product runs threaded only with at least this many output columns and this much work */
enum { MIN_THREADED_COLS = 128, MIN_SPLIT_ROWS = 256, ROW_BLOCK_ALIGN = 16 };
static const double MIN_THREADED_MNK = 4194304.0;   /* 2^22 multiply-adds */

/* C = 0 for a product with beta 0: rows of n floats, ldc apart */
static void zero_rows(float *c, int rows, int n, int ldc) {
    if (ldc == n) { memset(c, 0, (size_t)rows * (size_t)n * sizeof(float)); return; }
    for (int r = 0; r < rows; r++) memset(c + (size_t)r * (size_t)ldc, 0, (size_t)n * sizeof(float));
}

/* one single-call sgemm; beta 0 becomes a memset and beta 1 (see the header) */
static void sgemm_call(enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int m, int n, int k, float alpha,
                       const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc) {
    if (beta == 0.0f) { zero_rows(c, m, n, ldc); beta = 1.0f; }
    cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void nl_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha,
              const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc) {
    const enum CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans;
    const enum CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
#ifdef _OPENMP
    const int threads = omp_get_max_threads();
    if (threads > 1 && !omp_in_parallel() &&
        (n < MIN_THREADED_COLS || (double)m * (double)n * (double)k < MIN_THREADED_MNK)) {
        openblas_set_num_threads(1);
        sgemm_call(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        openblas_set_num_threads(threads);
        return;
    }
    if (threads > 1 && !omp_in_parallel() && m >= MIN_SPLIT_ROWS) {
        /* rows [r0, r1) of C and op(A) per thread; blocks aligned to ROW_BLOCK_ALIGN rows */
#pragma omp parallel num_threads(threads)
        {
            const int t = omp_get_thread_num(), nt = omp_get_num_threads();
            const int per = ((m + nt - 1) / nt + ROW_BLOCK_ALIGN - 1) / ROW_BLOCK_ALIGN * ROW_BLOCK_ALIGN;
            const int r0 = t * per < m ? t * per : m;
            const int r1 = r0 + per < m ? r0 + per : m;
            if (r1 > r0) {
                const float *ab = trans_a ? a + r0 : a + (size_t)r0 * (size_t)lda;
                sgemm_call(ta, tb, r1 - r0, n, k, alpha, ab, lda, b, ldb, beta,
                            c + (size_t)r0 * (size_t)ldc, ldc);
            }
        }
        return;
    }
#endif
    sgemm_call(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
