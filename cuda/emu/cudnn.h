/*
 * cuda/emu/cudnn.h - TEST-ONLY stub for the CPU emulation of the CUDA backend (make
 * cuda-emu): only the types that cuda/common.cuh names in its declarations. cuDNN cannot
 * be emulated; a file that calls it does not compile here and is left out of the build.
 */
#ifndef NNLUA_CUDA_EMU_CUDNN_H
#define NNLUA_CUDA_EMU_CUDNN_H
typedef struct nlc_emu_cudnn *cudnnHandle_t;
typedef enum { CUDNN_STATUS_SUCCESS = 0, CUDNN_STATUS_NOT_INITIALIZED = 1 } cudnnStatus_t;
#endif
