/*
 * cuda/emu/cublas_emu.cpp - TEST-ONLY CPU emulation of the cuBLAS calls declared in
 * cuda/emu/cublas_v2.h (make cuda-emu): the handle and version calls, and reference loops
 * over column-major matrices, accumulating in double. They check their arguments as
 * cuBLAS does (a null or destroyed handle is CUBLAS_STATUS_NOT_INITIALIZED; negative sizes, a leading dimension below max(1, rows),
 * a zero increment or a negative batch count are CUBLAS_STATUS_INVALID_VALUE) and, as
 * cuBLAS, never read C or y when beta is 0 (device memory here starts as NaN bytes).
 */
#include "cublas_v2.h"
#include <stddef.h>
#include <new>

enum : unsigned { CUBLAS_EMU_MAGIC = 0xc0b1a5u };
struct nlc_emu_cublas {
    unsigned magic;
    int device;
    cublasMath_t math;
    cudaStream_t stream;
};

namespace {

bool handle_ok(cublasHandle_t h) { return h && h->magic == CUBLAS_EMU_MAGIC; }

int max1(int v) { return v > 1 ? v : 1; }
bool op_ok(cublasOperation_t op) { return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C; }

/* element (i, j) of op(M) where M is column-major with leading dimension ld (real: C = T) */
float at(const float *M, int ld, cublasOperation_t op, long long i, long long j) {
    return op == CUBLAS_OP_N ? M[i + j * (long long)ld] : M[j + i * (long long)ld];
}

cublasStatus_t gemm_check(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                          const float *alpha, int lda, int ldb, const float *beta, int ldc) {
    if (!handle_ok(h)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!op_ok(ta) || !op_ok(tb) || m < 0 || n < 0 || k < 0 || !alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
    if (lda < max1(ta == CUBLAS_OP_N ? m : k) || ldb < max1(tb == CUBLAS_OP_N ? k : n) || ldc < max1(m))
        return CUBLAS_STATUS_INVALID_VALUE;
    return CUBLAS_STATUS_SUCCESS;
}

void gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha, const float *A, int lda,
          const float *B, int ldb, float beta, float *C, int ldc) {
    for (long long j = 0; j < n; j++)
        for (long long i = 0; i < m; i++) {
            double s = 0.0;
            for (long long p = 0; p < k; p++) s += (double)at(A, lda, ta, i, p) * (double)at(B, ldb, tb, p, j);
            float &c = C[i + j * (long long)ldc];
            c = (float)((double)alpha * s + (beta == 0.0f ? 0.0 : (double)beta * (double)c));
        }
}

}  // namespace

cublasStatus_t cublasCreate(cublasHandle_t *handle) {
    if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
    int dev = -1;
    if (cudaGetDevice(&dev) != cudaSuccess) {          /* no device: cuBLAS cannot start */
        cudaGetLastError();
        return CUBLAS_STATUS_NOT_INITIALIZED;
    }
    *handle = new (std::nothrow) nlc_emu_cublas{CUBLAS_EMU_MAGIC, dev, CUBLAS_DEFAULT_MATH, nullptr};
    return *handle ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}
cublasStatus_t cublasDestroy(cublasHandle_t handle) {
    if (!handle_ok(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->magic = 0;
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
    if (!handle_ok(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->stream = stream;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
    if (!handle_ok(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (mode != CUBLAS_DEFAULT_MATH && mode != CUBLAS_TENSOR_OP_MATH && mode != CUBLAS_PEDANTIC_MATH &&
        mode != CUBLAS_TF32_TENSOR_OP_MATH)
        return CUBLAS_STATUS_INVALID_VALUE;
    handle->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasGetMathMode(cublasHandle_t handle, cublasMath_t *mode) {
    if (!handle_ok(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!mode) return CUBLAS_STATUS_INVALID_VALUE;
    *mode = handle->math;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasGetProperty(libraryPropertyType type, int *value) {
    if (!value) return CUBLAS_STATUS_INVALID_VALUE;
    switch (type) {
    case MAJOR_VERSION: *value = CUBLAS_VER_MAJOR; return CUBLAS_STATUS_SUCCESS;
    case MINOR_VERSION: *value = CUBLAS_VER_MINOR; return CUBLAS_STATUS_SUCCESS;
    case PATCH_LEVEL: *value = CUBLAS_VER_PATCH; return CUBLAS_STATUS_SUCCESS;
    }
    return CUBLAS_STATUS_INVALID_VALUE;
}
cublasStatus_t cublasGetVersion(cublasHandle_t handle, int *version) {
    if (!handle_ok(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!version) return CUBLAS_STATUS_INVALID_VALUE;
    *version = CUBLAS_VER_MAJOR * 10000 + CUBLAS_VER_MINOR * 100 + CUBLAS_VER_PATCH;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                           int k, const float *alpha, const float *A, int lda, const float *B, int ldb,
                           const float *beta, float *C, int ldc) {
    if (cublasStatus_t s = gemm_check(handle, transa, transb, m, n, k, alpha, lda, ldb, beta, ldc)) return s;
    gemm(transa, transb, m, n, k, *alpha, A, lda, B, ldb, *beta, C, ldc);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                         int m, int n, int k, const float *alpha, const float *A, int lda,
                                         long long strideA, const float *B, int ldb, long long strideB,
                                         const float *beta, float *C, int ldc, long long strideC, int batchCount) {
    if (cublasStatus_t s = gemm_check(handle, transa, transb, m, n, k, alpha, lda, ldb, beta, ldc)) return s;
    if (batchCount < 0) return CUBLAS_STATUS_INVALID_VALUE;
    for (long long b = 0; b < batchCount; b++)
        gemm(transa, transb, m, n, k, *alpha, A + b * strideA, lda, B + b * strideB, ldb, *beta, C + b * strideC, ldc);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemv(cublasHandle_t handle, cublasOperation_t trans, int m, int n, const float *alpha,
                           const float *A, int lda, const float *x, int incx, const float *beta, float *y, int incy) {
    if (!handle_ok(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!op_ok(trans) || m < 0 || n < 0 || lda < max1(m) || incx == 0 || incy == 0 || !alpha || !beta)
        return CUBLAS_STATUS_INVALID_VALUE;
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;   /* y untouched, as the reference BLAS */
    /* op(A) is (rows x cols); x has cols entries, y rows; a negative increment walks backwards */
    const long long rows = trans == CUBLAS_OP_N ? m : n, cols = trans == CUBLAS_OP_N ? n : m;
    const long long x0 = incx > 0 ? 0 : (1 - cols) * incx, y0 = incy > 0 ? 0 : (1 - rows) * incy;
    for (long long i = 0; i < rows; i++) {
        double s = 0.0;
        for (long long j = 0; j < cols; j++) s += (double)at(A, lda, trans, i, j) * (double)x[x0 + j * incx];
        float &v = y[y0 + i * incy];
        v = (float)((double)*alpha * s + (*beta == 0.0f ? 0.0 : (double)*beta * (double)v));
    }
    return CUBLAS_STATUS_SUCCESS;
}
