/*
 * cuda/emu/cudnn.h - TEST-ONLY stub for the CPU emulation of the CUDA backend (make
 * cuda-emu): only the types that cuda/common.cuh and cuda/layers.cuh name (the handle,
 * the status, the descriptors and algorithm enums of layers.cuh's per-node states) and the
 * descriptor destroy calls of those states' destructors. cuDNN cannot be emulated: no
 * descriptor is ever created here (the destroy calls are never reached and fail), and a
 * file that calls anything else of cuDNN does not compile here and is left out of the build.
 */
#ifndef NNLUA_CUDA_EMU_CUDNN_H
#define NNLUA_CUDA_EMU_CUDNN_H
typedef struct nlc_emu_cudnn *cudnnHandle_t;
typedef enum { CUDNN_STATUS_SUCCESS = 0, CUDNN_STATUS_NOT_INITIALIZED = 1 } cudnnStatus_t;
typedef struct nlc_emu_cudnn_tensor *cudnnTensorDescriptor_t;
typedef struct nlc_emu_cudnn_filter *cudnnFilterDescriptor_t;
typedef struct nlc_emu_cudnn_conv *cudnnConvolutionDescriptor_t;
typedef struct nlc_emu_cudnn_pooling *cudnnPoolingDescriptor_t;
typedef enum { CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM = 0 } cudnnConvolutionFwdAlgo_t;
typedef enum { CUDNN_CONVOLUTION_BWD_DATA_ALGO_0 = 0 } cudnnConvolutionBwdDataAlgo_t;
typedef enum { CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 = 0 } cudnnConvolutionBwdFilterAlgo_t;
static inline cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t) { return CUDNN_STATUS_NOT_INITIALIZED; }
static inline cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t) { return CUDNN_STATUS_NOT_INITIALIZED; }
static inline cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t) { return CUDNN_STATUS_NOT_INITIALIZED; }
static inline cudnnStatus_t cudnnDestroyPoolingDescriptor(cudnnPoolingDescriptor_t) { return CUDNN_STATUS_NOT_INITIALIZED; }
#endif
