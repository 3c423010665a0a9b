/*
 * bad_entry.cuh - the node-level bad-entry check of the CUDA functions that read ids or
 * class labels from float data (one_hot, embed, categorical_cross_entropy in indexing.cu;
 * top_n_error, confusion_matrix in validation.cu). Kernels lower the node's flag word to
 * the first bad position (atomicMin, so the lowest: the one the CPU's in-order loop
 * reports); the host reads it back with the value there and fails with the CPU's message
 * (labels.h and the functions' own messages).
 */
#ifndef NNLUA_CUDA_BAD_ENTRY_CUH
#define NNLUA_CUDA_BAD_ENTRY_CUH
#include "common.cuh"
extern "C" {
#include "labels.h"
}

/* per-node state: an unsigned long long on the device, the lowest bad position (all ones = none) */
struct nlc_flag_state {
    nlc_buf flag;
};

/* The node's flag, set to "none" (ordered before the kernels that follow). NULL with an error. */
static inline unsigned long long *nlc_node_flag(nl_func *f) {
    nlc_flag_state *st = nlc_state<nlc_flag_state>(f);
    return st ? nlc_flag_arm(st->flag, f->device_id) : nullptr;
}

/* Waits for the kernels; *pos = the recorded position in ids (a device array) and *v the
 * value there, to name it as the CPU does; *pos = -1 when none. 0 or -1. */
static inline int nlc_flag_read(const unsigned long long *bad, const float *ids, int64_t *pos, float *v) {
    *v = 0.0f;
    *pos = -1;
    if (nlc_flag_key(bad, pos)) return -1;
    if (*pos >= 0) NLC_CUDA(cudaMemcpy(v, ids + *pos, sizeof *v, cudaMemcpyDeviceToHost));
    return 0;
}

/* In a kernel: the class id t[pos] (0..C-1), or -1 after recording pos in bad. */
__device__ __forceinline__ int64_t nlc_label_at(const float *t, int64_t pos, int64_t C, unsigned long long *bad) {
    const float l = t[pos];
    if (!nl_class_label_ok(l, C)) {
        atomicMin(bad, (unsigned long long)pos);
        return -1;
    }
    return (int64_t)l;
}

/* Waits for the kernels; fails with labels.h's message when a bad label was recorded in
 * bad (t: the labels on the device, C classes). 0 or -1. */
static inline int nlc_label_check(const unsigned long long *bad, const float *t, int64_t C) {
    int64_t pos = -1;
    float l = 0.0f;
    if (nlc_flag_read(bad, t, &pos, &l)) return -1;
    if (pos < 0) return 0;
    int64_t unused;
    if (nl_class_label(l, C, pos, &unused)) return -1;
    return nl_error("label %g at position %lld was read as invalid on the device", (double)l, (long long)(pos + 1));
}
#endif
