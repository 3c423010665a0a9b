/*
 * cuda/emu/cublas_v2.h - TEST-ONLY CPU emulation of the few cuBLAS calls the backend's
 * backend makes (make cuda-emu; spec/cuda_spec.lua with NNLUA_CUDA_EMU=1): the types,
 * enums and status values, the handle (cublasCreate/Destroy/SetStream/SetMathMode, which
 * cuda/device.cu calls), the version, and cublasSgemm, cublasSgemmStridedBatched and
 * cublasSgemv (column-major, with cuBLAS's argument checks) as plain loops with double
 * accumulation in cuda/emu/cublas_emu.cpp, synchronously on host memory (FP32 whatever
 * the math mode). Any other cuBLAS call does not compile here.
 */
#ifndef NNLUA_CUDA_EMU_CUBLAS_H
#define NNLUA_CUDA_EMU_CUBLAS_H
#include "cuda_runtime.h"
typedef struct nlc_emu_cublas *cublasHandle_t;
typedef enum {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED = 1,
    CUBLAS_STATUS_ALLOC_FAILED = 3,
    CUBLAS_STATUS_INVALID_VALUE = 7,
    CUBLAS_STATUS_ARCH_MISMATCH = 8,
    CUBLAS_STATUS_MAPPING_ERROR = 11,
    CUBLAS_STATUS_EXECUTION_FAILED = 13,
    CUBLAS_STATUS_INTERNAL_ERROR = 14,
    CUBLAS_STATUS_NOT_SUPPORTED = 15,
    CUBLAS_STATUS_LICENSE_ERROR = 16
} cublasStatus_t;
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1, CUBLAS_OP_C = 2 } cublasOperation_t;
typedef enum {
    CUBLAS_DEFAULT_MATH = 0,
    CUBLAS_TENSOR_OP_MATH = 1,
    CUBLAS_PEDANTIC_MATH = 2,
    CUBLAS_TF32_TENSOR_OP_MATH = 3
} cublasMath_t;
/* library_types.h in the toolkit */
typedef enum libraryPropertyType_t { MAJOR_VERSION, MINOR_VERSION, PATCH_LEVEL } libraryPropertyType;
#define CUBLAS_VER_MAJOR 12
#define CUBLAS_VER_MINOR 8
#define CUBLAS_VER_PATCH 0

/* the handle: one per cublasCreate, tied to the current device (NOT_INITIALIZED without one) */
cublasStatus_t cublasCreate(cublasHandle_t *handle);
cublasStatus_t cublasDestroy(cublasHandle_t handle);
cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream);
cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode);
cublasStatus_t cublasGetMathMode(cublasHandle_t handle, cublasMath_t *mode);
cublasStatus_t cublasGetProperty(libraryPropertyType type, int *value);
cublasStatus_t cublasGetVersion(cublasHandle_t handle, int *version);

/* C (m x n, ldc) = alpha op(A) (m x k) op(B) (k x n) + beta C; C is not read when beta is 0 */
cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                           int k, const float *alpha, const float *A, int lda, const float *B, int ldb,
                           const float *beta, float *C, int ldc);
/* batchCount such products; matrix i of A, B, C starts at A + i strideA (and so on) */
cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                         int m, int n, int k, const float *alpha, const float *A, int lda,
                                         long long strideA, const float *B, int ldb, long long strideB,
                                         const float *beta, float *C, int ldc, long long strideC, int batchCount);
/* y = alpha op(A) x + beta y, A (m x n, lda); y is not read when beta is 0 */
cublasStatus_t cublasSgemv(cublasHandle_t handle, cublasOperation_t trans, int m, int n, const float *alpha,
                           const float *A, int lda, const float *x, int incx, const float *beta, float *y, int incy);
#endif
