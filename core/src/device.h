/*
 * device.h - what a device backend (the CUDA library in cuda/) plugs into the engine:
 *   - nl_device_ops: allocate/free/copy/fill device memory; installed once with
 *     nl_set_device_ops when the backend loads. Arrays then sync lazily between host
 *     and device (array.c).
 *   - nl_register_impl: a forward/backward pair for one function on one backend
 *     ("cuda", "cudnn"). Nodes pick, when they are created, the first backend of the
 *     current context that implements them, falling back to the CPU implementation.
 * Plain C, so nvcc-compiled code can include it with extern "C".
 */
#ifndef NNLUA_DEVICE_H
#define NNLUA_DEVICE_H
#include "nnlua.h"
#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nl_device_ops {
    const char *name;                                             /* "cuda" */
    void *(*alloc)(size_t bytes, int device_id);                  /* NULL + nl_error on failure */
    void (*free)(void *p, size_t bytes, int device_id);
    int (*to_host)(void *host, const void *dev, size_t bytes, int device_id);
    int (*to_device)(void *dev, const void *host, size_t bytes, int device_id);
    int (*fill)(void *dev, float value, int64_t n, int device_id);
} nl_device_ops;

void nl_set_device_ops(const nl_device_ops *ops);
const nl_device_ops *nl_device_ops_get(void);
/* Device pointer of an array for the given access (allocating and syncing lazily). */
void *nl_array_device(nl_array *a, nl_access mode, int device_id);
/* The device holding the array's device copy, or -1 when it has none. */
int nl_array_device_id(const nl_array *a);

typedef int (*nl_forward_fn)(nl_func *f);
typedef int (*nl_backward_fn)(nl_func *f, const bool *prop, const bool *accum);

enum { NL_BACKEND_CPU = 0, NL_BACKEND_CUDA = 1, NL_BACKEND_CUDNN = 2, NL_N_BACKENDS = 3 };

/* Registers fn's implementation on a backend ("cuda" or "cudnn"). 0 or -1. */
int nl_register_impl(const char *function_name, const char *backend,
                     nl_forward_fn forward, nl_backward_fn backward);
/* The backend a node runs on and its device (for kernels). */
int nl_func_backend(const nl_func *f);
int nl_func_device(const nl_func *f);

#ifdef __cplusplus
}
#endif
#endif
