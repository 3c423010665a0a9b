/*
 * cuda/emu/cublas_v2.h - TEST-ONLY stub for the CPU emulation of the CUDA backend (make
 * cuda-emu): only the types that cuda/common.cuh names in its declarations. cuBLAS cannot
 * be emulated; a file that calls it does not compile here and is left out of the build.
 */
#ifndef NNLUA_CUDA_EMU_CUBLAS_H
#define NNLUA_CUDA_EMU_CUBLAS_H
typedef struct nlc_emu_cublas *cublasHandle_t;
typedef enum { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_NOT_INITIALIZED = 1 } cublasStatus_t;
#endif
