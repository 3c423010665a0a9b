/*
 * nnlua.h - the public C API of libnnlua, the engine behind the nnlua Lua package.
 *
 * Everything between NL_CDEF_BEGIN and NL_CDEF_END is plain C declarations (no macros,
 * no inline functions, no varargs, no structs passed by value): the build copies that
 * region verbatim into lua/nnlua/cdef.lua, which LuaJIT reads with ffi.cdef.
 *
 * Conventions
 *   - Every entry point that can fail returns a status (0 = ok, nonzero = error) or NULL,
 *     and leaves a message in nl_last_error(). Nothing aborts on user input.
 *   - Objects (arrays, variables, functions) are reference counted. A function that
 *     returns an object pointer returns a NEW reference: the caller releases it.
 *   - Data is float32, row-major. Shapes are int64 lists of at most NL_MAX_NDIM dims.
 *   - Axes and indices given to functions follow the Lua convention: 1-based, negative
 *     counts from the end (-1 is the last axis).
 *
 * A tiny tour:
 *   nl_var *x = nl_var_new(2, (int64_t[]){64, 64}, 0);
 *   nl_var *w = nl_var_new(2, (int64_t[]){64, 10}, 1);
 *   nl_var *in[2] = {x, w};
 *   nl_var *y;
 *   nl_apply(nl_function_lookup("affine"), 2, in, args, nargs, 0, &y, 1);
 *                                         -- y's shape {64, 10} is known here
 *   nl_var_forward(y, 0, 0); nl_array_fill(nl_var_grad(y), 1); nl_var_backward(y, 0);
 */
#ifndef NNLUA_H
#define NNLUA_H
#include <stdint.h>
#include <stddef.h>

/* NL_CDEF_BEGIN */
enum { NL_MAX_NDIM = 8, NL_MAX_ARG_LEN = 16, NL_MAX_INPUTS = 64, NL_MAX_OUTPUTS = 64 };

/* ---- errors ------------------------------------------------------------------------- */
const char *nl_last_error(void);
void nl_clear_error(void);
const char *nl_version(void);
/* sizeof a public struct as C sees it ("nl_arg"); 0 for an unknown name. The ABI spec
 * compares it with ffi.sizeof. */
size_t nl_abi_sizeof(const char *type_name);

/* ---- interrupts: a SIGINT handler (the REPL's) calls nl_interrupt(); the next
 *      forward/backward step stops with the error "interrupted" ------------------------- */
void nl_interrupt(void);
int nl_interrupted_take(void);      /* 1 (and clears the flag) if an interrupt is pending */

/* ---- memory accounting -------------------------------------------------------------- */
int64_t nl_bytes_in_use(void);      /* bytes held by live arrays (host copies)          */
int64_t nl_bytes_peak(void);        /* high-water mark of nl_bytes_in_use               */
int64_t nl_bytes_cached(void);      /* freed buffers kept by the caching allocator      */
int64_t nl_alloc_count(void);       /* calls that reached the system allocator          */
void nl_free_cached(void);          /* give the cached buffers back to the system       */

/* ---- synced arrays: one logical float buffer, host copy now, device copy later ------ */
typedef struct nl_array nl_array;
typedef enum { NL_READ = 0, NL_WRITE = 1, NL_READWRITE = 2 } nl_access;
nl_array *nl_array_new(int64_t size);
void nl_array_retain(nl_array *a);
void nl_array_release(nl_array *a);
int64_t nl_array_size(const nl_array *a);
/* Host pointer for the given access; materializes a pending lazy zero/fill and syncs
 * from the device copy when the host copy is stale. NL_WRITE drops the other copies.
 * Returns NULL (with an error) only when memory runs out. */
float *nl_array_host(nl_array *a, nl_access mode);
void nl_array_zero(nl_array *a);             /* lazy: no memset until someone reads */
void nl_array_fill(nl_array *a, float v);    /* lazy as well                        */
int nl_array_zeroing(const nl_array *a);     /* 1 while a lazy zero is pending      */
int nl_array_is_lazy(const nl_array *a, float *value);  /* 1 with the pending value */
void nl_array_clear(nl_array *a);            /* drop the storage (contents undefined) */
int nl_array_has_storage(const nl_array *a);
int nl_array_copy(nl_array *dst, int64_t dst_off, nl_array *src, int64_t src_off, int64_t n);
int nl_array_set_from(nl_array *dst, const float *src, int64_t n);
int nl_array_get_into(nl_array *src, float *dst, int64_t n);
/* Which copies are current: 1 host, 2 device, 4 a lazy fill is pending. */
int nl_array_where(const nl_array *a);

/* ---- variables ---------------------------------------------------------------------- */
typedef struct nl_var nl_var;
typedef struct nl_func nl_func;
nl_var *nl_var_new(int ndim, const int64_t *shape, int need_grad);
void nl_var_retain(nl_var *v);
void nl_var_release(nl_var *v);
int nl_var_ndim(const nl_var *v);
const int64_t *nl_var_shape(const nl_var *v);
int64_t nl_var_size(const nl_var *v);
nl_array *nl_var_data(nl_var *v);            /* borrowed reference */
nl_array *nl_var_grad(nl_var *v);            /* borrowed reference */
int nl_var_need_grad(const nl_var *v);
void nl_var_set_need_grad(nl_var *v, int need_grad);
int nl_var_persistent(const nl_var *v);
void nl_var_set_persistent(nl_var *v, int persistent);
const char *nl_var_name(const nl_var *v);
int nl_var_set_name(nl_var *v, const char *name);
nl_func *nl_var_parent(nl_var *v);           /* new reference or NULL */
/* A new variable sharing v's data and grad arrays, without a parent. need_grad < 0 keeps v's. */
nl_var *nl_var_unlinked(nl_var *v, int need_grad);
/* A new parentless variable of another shape (same size) sharing v's arrays. */
nl_var *nl_var_view(nl_var *v, int ndim, const int64_t *shape);
/* Replace the data (and grad) arrays of v by those of src, which must have the same size. */
int nl_var_share_arrays(nl_var *v, nl_var *src);
int nl_var_forward(nl_var *v, int clear_buffer, int clear_no_need_grad);
/* Backpropagates the gradient currently held in v's grad array. */
int nl_var_backward(nl_var *v, int clear_buffer);
/* Functions of the sub-graph under v in topological (forward) order: fills up to cap
 * entries of out with new references and returns how many there are in all. */
int nl_var_functions(nl_var *v, nl_func **out, int cap);
/* One function alone, as a profiler times it: forward with its current inputs; backward
 * from its outputs' current gradients into every input that needs one (overwriting). The
 * backward needs what the forward saved, as in a graph. */
int nl_func_run_forward(nl_func *f);
int nl_func_run_backward(nl_func *f);

/* ---- function registry: descriptors the Lua wrappers are generated from ------------- */
typedef enum {
    NL_ARG_INT = 0,     /* an integer                                                  */
    NL_ARG_FLOAT = 1,   /* a number                                                    */
    NL_ARG_BOOL = 2,    /* true/false                                                  */
    NL_ARG_INTS = 3,    /* a list of integers (kernel, pad, stride, shape, ...)        */
    NL_ARG_AXIS = 4,    /* one axis, 1-based, negative from the end                    */
    NL_ARG_AXES = 5,    /* a list of axes (or one axis), 1-based                        */
    NL_ARG_CHOICE = 6,  /* one of a '|' separated list of strings, passed as its index  */
    NL_ARG_FLOATS = 7,  /* a list of numbers                                           */
    NL_ARG_INDEX = 8    /* a list of 1-based positions (slice start/stop)              */
} nl_argtype;

/* One argument value. n is the number of entries used in v (1 for scalars);
 * n = -1 means "not given" (None): the function picks its default from the inputs. */
typedef struct nl_arg {
    int32_t n;
    int32_t type;
    double v[16];
} nl_arg;

int nl_function_count(void);
int nl_function_lookup(const char *name);            /* -1 when unknown */
const char *nl_function_name(int id);
int nl_function_n_inputs(int id);                    /* required inputs */
int nl_function_n_optional_inputs(int id);           /* optional inputs after those */
int nl_function_variadic(int id);                    /* 1: any number of inputs >= n_inputs */
const char *nl_function_input_names(int id);         /* comma separated */
int nl_function_n_outputs(int id);                   /* -1: decided by setup */
int nl_function_n_args(int id);
const char *nl_function_arg_name(int id, int i);
int nl_function_arg_type(int id, int i);
const char *nl_function_arg_default(int id, int i);  /* Lua syntax: "1", "{}", "true", "nil" */
const char *nl_function_arg_choices(int id, int i);  /* for NL_ARG_CHOICE, else "" */
const char *nl_function_doc(int id);

/* ---- function nodes ----------------------------------------------------------------- */
/* Applies function `id` to the inputs: checks the arguments, infers the output shapes
 * (setup) and links new output variables to a new function node, which they keep alive.
 * Missing optional inputs are NULL. args has nl_function_n_args(id) entries; an entry
 * with n = -2 takes the registered default. With run_forward (auto-forward mode) the node
 * is computed at once. Writes up to cap outputs (new references) and returns their
 * count, or -1 on error. */
int nl_apply(int id, int n_in, nl_var *const *inputs, const nl_arg *args, int n_args,
             int run_forward, nl_var **outputs, int cap);
void nl_func_retain(nl_func *f);
void nl_func_release(nl_func *f);
int nl_func_id(const nl_func *f);
const char *nl_func_name(const nl_func *f);
int nl_func_n_inputs(const nl_func *f);
int nl_func_n_outputs(const nl_func *f);
nl_var *nl_func_input(nl_func *f, int i);            /* new reference or NULL */
nl_var *nl_func_output(nl_func *f, int i);           /* new reference or NULL (dropped) */
const nl_arg *nl_func_arg(const nl_func *f, int i);
/* While disabled (nn.no_grad), new outputs get need_grad = false and, in auto-forward
 * mode, are not linked to a graph at all. */
void nl_set_grad_enabled(int enabled);
int nl_grad_enabled(void);

/* ---- contexts: the ordered backend list new nodes choose from ----------------------- */
/* backends: a comma-separated list such as "cudnn,cuda,cpu" (cpu is always the last
 * resort); device_id: the device for device backends. */
int nl_set_context(const char *backends, int device_id);
/* The backend name a node runs on ("cpu", "cuda", "cudnn"). */
const char *nl_func_backend_name(const nl_func *f);
/* 1 when function `id` has an implementation on the named backend. */
int nl_function_has_impl(int id, const char *backend);

/* ---- random numbers (seeded, reproducible) ------------------------------------------ */
void nl_seed(uint64_t seed);
uint64_t nl_seed_value(void);
int nl_rand_uniform(nl_array *a, float low, float high);
int nl_rand_normal(nl_array *a, float mean, float stddev);
int nl_rand_permutation(int64_t n, int64_t *out, uint64_t seed);  /* 0-based permutation */

/* ---- element-wise helpers used by solvers and NdArray ------------------------------- */
int nl_axpy(nl_array *y, float alpha, nl_array *x);        /* y += alpha * x          */
int nl_scale(nl_array *x, float alpha);                    /* x *= alpha              */
double nl_sum(nl_array *x);
double nl_sum_squares(nl_array *x);
int nl_has_inf_or_nan(nl_array *x);

/* ---- solvers: update kernels; the Lua side keeps the parameter lists ---------------- */
/* Parameters whose grad is still lazily zero (no gradient since zero_grad) are skipped
 * by the Lua driver, as NNabla does. */
int nl_sgd_update(nl_array *w, nl_array *g, float lr);
int nl_weight_decay(nl_array *w, nl_array *g, float decay);  /* g += decay * w */
/* One parameter each: w its data, g its grad, then its state arrays (same size as w, in
 * the order of NNabla's state names), then the hyperparameters. t is the parameter's step
 * count including this update (>= 1). `decay` is the fused weight decay: for SgdW
 * (lr/initial lr)*rate, for AdamW (alpha/initial alpha)*rate, for Lars and Lamb the rate. */
int nl_momentum_update(nl_array *w, nl_array *g, nl_array *m, float lr, float momentum);
int nl_nesterov_update(nl_array *w, nl_array *g, nl_array *m, float lr, float momentum);
int nl_sgdw_update(nl_array *w, nl_array *g, nl_array *m, float lr, float momentum,
                   float decay);
int nl_adagrad_update(nl_array *w, nl_array *g, nl_array *v, float lr, float eps);
int nl_adadelta_update(nl_array *w, nl_array *g, nl_array *e_sqr_grad, nl_array *e_sqr_delta,
                       float lr, float decay, float eps);
int nl_rmsprop_update(nl_array *w, nl_array *g, nl_array *v, float lr, float decay, float eps);
int nl_rmsprop_graves_update(nl_array *w, nl_array *g, nl_array *n, nl_array *gm, nl_array *d,
                             float lr, float decay, float momentum, float eps);
int nl_adam_update(nl_array *w, nl_array *g, nl_array *mean, nl_array *var, float alpha,
                   float beta1, float beta2, float eps, int64_t t, float decay);
int nl_amsgrad_update(nl_array *w, nl_array *g, nl_array *m, nl_array *v, nl_array *v_hat,
                      float alpha, float beta1, float beta2, float eps, int bias_correction,
                      int64_t t);
int nl_adabound_update(nl_array *w, nl_array *g, nl_array *mean, nl_array *var, float alpha,
                       float init_alpha, float beta1, float beta2, float eps, float final_lr,
                       float gamma, int64_t t);
int nl_adamax_update(nl_array *w, nl_array *g, nl_array *m, nl_array *u, float alpha,
                     float beta1, float beta2, float eps, int64_t t);
/* Lars adds decay * w to g in place (as NNabla does) before the momentum step. */
int nl_lars_update(nl_array *w, nl_array *g, nl_array *v, float lr, float momentum,
                   float coefficient, float eps, float decay);
int nl_lamb_update(nl_array *w, nl_array *g, nl_array *mean, nl_array *var, float eta,
                   float beta1, float beta2, float gamma_l, float gamma_u, float eps,
                   int bias_correction, float decay, int64_t t);

/* ---- HDF5 parameter files (NNabla's layout) ----------------------------------------- */
typedef struct nl_h5file nl_h5file;
/* Writes n parameters to path atomically (a temporary file, then rename). names are
 * scoped paths such as "affine1/affine/W"; data[i] points at sizes implied by shapes. */
int nl_h5_save(const char *path, int n, const char *const *names, const int *ndims,
               const int64_t *const *shapes, const float *const *data,
               const int *need_grad);
nl_h5file *nl_h5_open(const char *path);             /* reads the directory of datasets */
void nl_h5_close(nl_h5file *h);
int nl_h5_count(const nl_h5file *h);                 /* datasets, sorted by (index, name) */
const char *nl_h5_name(const nl_h5file *h, int i);
int nl_h5_ndim(const nl_h5file *h, int i);
const int64_t *nl_h5_shape(const nl_h5file *h, int i);
int nl_h5_need_grad(const nl_h5file *h, int i);
int64_t nl_h5_index(const nl_h5file *h, int i);      /* -1 when the file has none */
int nl_h5_read(nl_h5file *h, int i, float *dst, int64_t n);
/* Solver state files (NNabla's save_states layout): for parameter i a group at names[i]
 * with an int64 attribute `index` = i, holding a scalar int64 dataset `t` = ts[i] and one
 * float32 dataset per state name in the parameter's shape (int64 attribute `index` = k);
 * data[i * n_states + k] is state k of parameter i. Atomic like nl_h5_save. */
int nl_h5_save_states(const char *path, int n, const char *const *names, const int *ndims,
                      const int64_t *const *shapes, const int64_t *ts, int n_states,
                      const char *const *state_names, const float *const *data);
/* Opens a state file as a directory of datasets ("affine1/affine/W/mean", ".../t") sorted
 * by (the group's index, name); the accessors above apply. */
nl_h5file *nl_h5_open_states(const char *path);
int64_t nl_h5_group_index(const nl_h5file *h, int i);  /* the group's `index`, -1 if none */
int nl_h5_read_int(nl_h5file *h, int i, int64_t *dst, int64_t n);
/* NL_CDEF_END */

#endif
