/*
 * nnlua_cuda.h - the entry points of libnnlua_cuda.so, the CUDA/cuDNN backend: init and
 * device queries, the caching allocator's counters, and the solver kernels on the device
 * (each nl_cuda_<name> takes exactly the arguments of the engine's host kernel nl_<name>).
 * The region between the markers is copied by make into lua/nnlua/cuda_cdef.lua, which
 * lua/nnlua/cuda.lua hands to ffi.cdef: plain declarations only.
 */
#ifndef NNLUA_CUDA_H
#define NNLUA_CUDA_H
#include "nnlua.h"

#ifdef __cplusplus
extern "C" {
#endif

/* NL_CDEF_BEGIN */
int nl_cuda_init(void);
int nl_cuda_device_count(void);
int nl_cuda_check_device(int device_id);
const char *nl_cuda_device_name(int device_id);
const char *nl_cuda_version(void);
int nl_cuda_registered_count(void);
int nl_cuda_synchronize(int device_id);
int64_t nl_cuda_bytes_in_use(int device_id);
int64_t nl_cuda_bytes_cached(int device_id);
int64_t nl_cuda_bytes_peak(int device_id);
int64_t nl_cuda_malloc_count(int device_id);
void nl_cuda_free_cached(void);
int nl_cuda_set_solver_device(int device_id);
int nl_cuda_on_device(const nl_array *a);
int nl_cuda_sgd_update(nl_array *w, nl_array *g, float lr);
int nl_cuda_weight_decay(nl_array *w, nl_array *g, float decay);
int nl_cuda_momentum_update(nl_array *w, nl_array *g, nl_array *m, float lr, float momentum);
int nl_cuda_nesterov_update(nl_array *w, nl_array *g, nl_array *m, float lr, float momentum);
int nl_cuda_sgdw_update(nl_array *w, nl_array *g, nl_array *m, float lr, float momentum, float decay);
int nl_cuda_adagrad_update(nl_array *w, nl_array *g, nl_array *v, float lr, float eps);
int nl_cuda_adadelta_update(nl_array *w, nl_array *g, nl_array *e_sqr_grad, nl_array *e_sqr_delta, float lr,
                            float decay, float eps);
int nl_cuda_rmsprop_update(nl_array *w, nl_array *g, nl_array *v, float lr, float decay, float eps);
int nl_cuda_rmsprop_graves_update(nl_array *w, nl_array *g, nl_array *n, nl_array *gm, nl_array *d, float lr,
                                  float decay, float momentum, float eps);
int nl_cuda_adam_update(nl_array *w, nl_array *g, nl_array *mean, nl_array *var, float alpha, float beta1,
                        float beta2, float eps, int64_t t, float decay);
int nl_cuda_amsgrad_update(nl_array *w, nl_array *g, nl_array *m, nl_array *v, nl_array *v_hat, float alpha,
                           float beta1, float beta2, float eps, int bias_correction, int64_t t);
int nl_cuda_adabound_update(nl_array *w, nl_array *g, nl_array *mean, nl_array *var, float alpha, float init_alpha,
                            float beta1, float beta2, float eps, float final_lr, float gamma, int64_t t);
int nl_cuda_adamax_update(nl_array *w, nl_array *g, nl_array *m, nl_array *u, float alpha, float beta1, float beta2,
                          float eps, int64_t t);
int nl_cuda_lars_update(nl_array *w, nl_array *g, nl_array *v, float lr, float momentum, float coefficient,
                        float eps, float decay);
int nl_cuda_lamb_update(nl_array *w, nl_array *g, nl_array *mean, nl_array *var, float eta, float beta1, float beta2,
                        float gamma_l, float gamma_u, float eps, int bias_correction, float decay, int64_t t);
int nl_cuda_axpy(nl_array *y, float alpha, nl_array *x);
int nl_cuda_scale(nl_array *x, float alpha);
double nl_cuda_sum_squares(nl_array *x);
int nl_cuda_has_inf_or_nan(nl_array *x);
/* NL_CDEF_END */

#ifdef __cplusplus
}
#endif
#endif
