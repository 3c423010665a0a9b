/*
 * function.h - what a function implementation in core/functions/ sees.
 *
 * A function is a `const nl_fdef nl_fdef_<name>` with
 *   setup     checks inputs and arguments, sets the output shapes (nl_set_out_shape),
 *             may allocate f->state; runs once, when the node is created
 *   forward   computes outputs from inputs
 *   backward  for every input i with prop[i], writes (accum[i] false) or adds (accum[i]
 *             true) the input gradient. A non-accumulating write must not read the old
 *             gradient: the tester pre-fills it with NaN.
 *   destroy   frees f->state (optional)
 * plus its name, input names, argument descriptors and doc, and one line in
 * core/functions/registry.def. Errors: `return nl_error("input 'x' ...")`; the engine
 * prefixes the function name.
 *
 * Shapes below are written as comments on each kernel: x: (N, C, H, W) and so on.
 */
#ifndef NNLUA_FUNCTION_H
#define NNLUA_FUNCTION_H
#include "internal.h"
#include <stdbool.h>

typedef struct nl_argdef {
    const char *name;
    nl_argtype type;
    const char *deflt;   /* Lua syntax: "1", "{1, 1}", "true", "nil", "1e-5", "'constant'" */
    const char *choices; /* "constant|reflect|repeat" for NL_ARG_CHOICE, else NULL       */
} nl_argdef;

typedef struct nl_fdef {
    const char *name;
    const char *doc;
    const char *in_names;    /* "x,weight,bias" */
    int n_in;                /* required inputs */
    int n_opt_in;            /* optional inputs after the required ones (may be NULL) */
    bool variadic;           /* any number >= n_in of inputs (add_n, concatenate) */
    int n_out;               /* -1: setup sets f->n_out */
    int n_args;
    const nl_argdef *args;
    int (*setup)(nl_func *f);
    int (*forward)(nl_func *f);
    int (*backward)(nl_func *f, const bool *prop, const bool *accum);
    void (*destroy)(nl_func *f);
    uint32_t grad_in_data;   /* bit i: backward reads input i's data   */
    uint32_t grad_out_data;  /* bit i: backward reads output i's data  */
} nl_fdef;

struct nl_array;

struct nl_var {
    int refcount;
    int ndim;
    int64_t shape[NL_MAX_NDIM];
    int64_t size;
    struct nl_array *data;
    struct nl_array *grad;
    bool need_grad;
    bool need_grad_set;      /* need_grad was set on this intermediate by the user: kept as
                              * is; otherwise each run derives it from the inputs (graph.c) */
    bool persistent;
    nl_func *parent;         /* strong reference */
    char *name;
    /* graph traversal scratch */
    uint64_t stamp;          /* forward/backward pass that last counted this var */
    uint64_t grad_stamp;     /* backward pass that last wrote this var's grad */
    int consumers_left;
    bool keep_for_grad;
    struct nl_var *next_dead;  /* var.c: the list of dead variables still to be freed */
};

struct nl_func {
    int refcount;
    int id;
    const nl_fdef *def;
    int n_in, n_out;
    nl_var **in;                         /* strong references; NULL = missing optional */
    nl_var *out[NL_MAX_OUTPUTS];         /* weak; a var clears its slot when it dies */
    uint64_t owned_out;                  /* bit o: out[o] was revived and is owned here */
    int ondim[NL_MAX_OUTPUTS];           /* set by setup */
    int64_t *oshape;                     /* n_out x NL_MAX_NDIM, set by setup */
    nl_arg *args;                        /* def->n_args entries, defaults resolved */
    void *state;                         /* function-specific, freed by def->destroy */
    float *scratch[4];                   /* nl_func_scratch buffers */
    int64_t scratch_n[4];
    bool training;                       /* grad was enabled when the node was made */
    int backend;                         /* NL_BACKEND_* the node runs on */
    int device_id;
    int (*fwd)(nl_func *f);              /* the chosen implementation */
    int (*bwd)(nl_func *f, const bool *prop, const bool *accum);
    uint64_t stamp;                      /* traversal scratch */
    void *dev_state;                     /* a device backend's per-node state (cuda/) */
    void (*dev_destroy)(nl_func *f);     /* frees dev_state when the node dies */
};

/* ---- setup helpers ---- */
int nl_set_n_out(nl_func *f, int n);
void nl_set_out_shape(nl_func *f, int i, int ndim, const int64_t *shape);
/* The most elements an array may have (2^48: 1 PiB of floats), so that element counts and
 * byte sizes never overflow int64 / size_t. */
#define NL_MAX_ELEMENTS 0x1p48
/* Refuses a shape of more than NL_MAX_ELEMENTS elements (named `what` in the message) before
 * anyone multiplies its sizes: huge kernels, strides, pads or repetitions would overflow.
 * The product is taken in double: exact enough to compare, and it cannot wrap. */
static inline int nl_check_out_size(const char *what, int ndim, const int64_t *shape) {
    double n = 1;
    for (int i = 0; i < ndim; i++) n *= (double)shape[i];
    if (n > NL_MAX_ELEMENTS) {
        char b[160];
        return nl_error("%s %s has too many elements (at most 2^48)", what, nl_shape_str(b, ndim, shape));
    }
    return 0;
}
int nl_same_shape(const nl_var *a, const nl_var *b);
/* Normalizes a Lua-style axis (1-based, negative from the end) against ndim into
 * 0..ndim-1, or fails naming the argument. */
int nl_norm_axis(const char *argname, int64_t axis, int ndim, int *out);

/* ---- argument access (args[k] after defaults) ---- */
static inline bool nl_arg_given(const nl_func *f, int k) { return f->args[k].n >= 0; }
static inline int64_t nl_arg_int(const nl_func *f, int k) { return (int64_t)f->args[k].v[0]; }
static inline double nl_arg_float(const nl_func *f, int k) { return f->args[k].v[0]; }
static inline bool nl_arg_bool(const nl_func *f, int k) { return f->args[k].v[0] != 0; }
static inline int nl_arg_len(const nl_func *f, int k) { return f->args[k].n; }
static inline int64_t nl_arg_at(const nl_func *f, int k, int j) { return (int64_t)f->args[k].v[j]; }

/* ---- data access inside forward/backward; NULL only when memory runs out ---- */
static inline nl_var *nl_in(nl_func *f, int i) { return f->in[i]; }
static inline nl_var *nl_out(nl_func *f, int i) { return f->out[i]; }
const float *nl_in_data(nl_func *f, int i);
float *nl_out_data(nl_func *f, int i);              /* write-only */
const float *nl_out_data_r(nl_func *f, int i);      /* read (for backward) */
const float *nl_out_grad(nl_func *f, int i);
float *nl_in_grad(nl_func *f, int i, bool accum);   /* write-only when !accum */

/* Declares `float *name = expr;` and returns -1 from the caller when it is NULL. */
#define NL_PTR(type, name, expr) \
    type name = (expr);          \
    if (!name) return -1

/* Work space that lives as long as the node (aligned, cached). */
float *nl_func_scratch(nl_func *f, int slot, int64_t n);

/* ---- vector code: hot loops compiled for AVX-512, AVX2+FMA and the baseline; the
 *      loader picks the one the CPU runs (GCC function multiversioning, x86-64 only). ---- */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11 && \
    defined(__GLIBC__) && !defined(NL_NO_CLONES)   /* ifuncs: glibc (its headers define it) */
#define NL_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define NL_SIMD_CLONES
#endif

/* Loops that copy or zero short runs (a few to a few dozen values) stay inline loops
 * instead of becoming calls to memcpy/memset (GCC's loop distribution). */
#if defined(__GNUC__) && !defined(__clang__)
#define NL_NO_MEMCALLS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define NL_NO_MEMCALLS
#endif

/* ---- threading: run body(i0, i1, ctx) over [0, n) on the engine's threads when n*cost
 *      is large enough to pay for it, else inline on this thread ---- */
typedef void (*nl_range_fn)(int64_t i0, int64_t i1, void *ctx);
void nl_parallel_for(int64_t n, int64_t cost_per_item, nl_range_fn body, void *ctx);
/* How many of the engine's threads `work` (cost units, as above) is worth: 1 for small
 * work or inside a parallel region. */
int nl_parallel_threads(int64_t work);
/* Runs body(task, thread, ctx) for every task in [0, n_tasks) on up to `threads` threads:
 * task k gets thread = k mod threads, and the tasks of one `thread` run in order, one at a
 * time (so per-thread buffers indexed by it are safe); BLAS calls inside run single-threaded.
 * For work split into independent pieces that each need their own buffers. */
typedef void (*nl_task_fn)(int64_t task, int thread, void *ctx);
void nl_parallel_tasks(int64_t n_tasks, int threads, nl_task_fn body, void *ctx);

/* ---- dense products: row-major C (m, n) = alpha op(A) (m, k) op(B) (k, n) + beta C through
 *      OpenBLAS; small or narrow products run on one thread (blas.c) ---- */
void nl_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha,
              const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);

#endif
