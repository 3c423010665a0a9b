/*
 * pinned_stage.cuh - a node's pinned (page-locked) host staging buffer for uploads drawn on
 * the host (the stochastic functions' random draws, the recurrent layers' dropout masks):
 * the host fills it, upload() copies it to the device asynchronously on the default stream
 * and records an event, and the next get() waits on that event before the host writes it
 * again. It grows (by half, at least 4 KiB) and never shrinks; the destructor waits for the
 * last upload before freeing it.
 */
#ifndef NNLUA_CUDA_PINNED_STAGE_CUH
#define NNLUA_CUDA_PINNED_STAGE_CUH
#include "common.cuh"
#include <string.h>

struct nlc_pinned_stage {
    unsigned char *p = nullptr;
    size_t bytes = 0;
    cudaEvent_t done = nullptr;
    bool pending = false;           /* an upload from p may still be in flight */

    /* Waits for the last upload, then returns at least want bytes, the first keep of them
     * kept when it grows. NULL with an error. */
    unsigned char *get(size_t want, size_t keep = 0) {
        if (pending) {
            pending = false;
            const cudaError_t e = cudaEventSynchronize(done);
            if (e != cudaSuccess) { nlc_cuda_err(e, "cudaEventSynchronize(staging)"); return nullptr; }
        }
        if (p && bytes >= want) return p;
        size_t nb = bytes + bytes / 2;
        if (nb < want) nb = want;
        if (nb < 4096) nb = 4096;
        void *q = nullptr;
        const cudaError_t e = cudaMallocHost(&q, nb);
        if (e != cudaSuccess) { nlc_cuda_err(e, "cudaMallocHost(staging)"); return nullptr; }
        if (keep) memcpy(q, p, keep);
        if (p) cudaFreeHost(p);
        p = (unsigned char *)q;
        bytes = nb;
        return p;
    }
    /* Copies the first n bytes to dst (device) asynchronously. 0 or -1. */
    int upload(void *dst, size_t n) {
        if (n == 0) return 0;
        if (!done) NLC_CUDA(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
        NLC_CUDA(cudaMemcpyAsync(dst, p, n, cudaMemcpyHostToDevice));
        const cudaError_t e = cudaEventRecord(done);
        if (e != cudaSuccess) {            /* the copy is queued but unmarked: wait for it here */
            cudaDeviceSynchronize();
            return nlc_cuda_err(e, "cudaEventRecord(staging)");
        }
        pending = true;
        return 0;
    }
    ~nlc_pinned_stage() {
        if (done) {
            cudaEventSynchronize(done);
            cudaEventDestroy(done);
        }
        if (p) cudaFreeHost(p);
        cudaGetLastError();
    }
};

#endif
