/*
 * blas.c - the engine's one door to OpenBLAS's sgemm (row-major). It decides how many
 * threads a product gets: OpenBLAS threads every product above ~2.6e5 multiply-adds, but
 * on two cores a product with few output columns or little work runs slower threaded than
 * on one thread (measured with OpenBLAS 0.3.21: 128x10x1024 75 us on one thread against
 * 82-215 us on two; 256x10x500 51 against 190; 128x32x1024 108 against 216), so those
 * run on the calling thread and the thread count is put back afterwards.
 */
#include "function.h"
#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* a product runs threaded only with at least this many output columns and this much work */
enum { MIN_THREADED_COLS = 128 };
static const double MIN_THREADED_MNK = 4194304.0;   /* 2^22 multiply-adds */

void nl_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha,
              const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc) {
    const enum CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans;
    const enum CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
#ifdef _OPENMP
    const int threads = omp_get_max_threads();
    if (threads > 1 && !omp_in_parallel() &&
        (n < MIN_THREADED_COLS || (double)m * (double)n * (double)k < MIN_THREADED_MNK)) {
        openblas_set_num_threads(1);
        cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        openblas_set_num_threads(threads);
        return;
    }
#endif
    cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
