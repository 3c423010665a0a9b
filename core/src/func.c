/*
 * func.c - function nodes: the registry's descriptors as the FFI sees them, argument
 * defaults and checks, node creation (setup = shape inference), the data accessors that
 * kernels use, and node lifetime.
 */
#include "function.h"
#include "device.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const nl_fdef *const nl_registry[];
extern const int nl_registry_size;

static bool g_grad_enabled = true;
void nl_set_grad_enabled(int enabled) { g_grad_enabled = enabled != 0; }
int nl_grad_enabled(void) { return g_grad_enabled; }

/* ---- implementations per backend and the current context ------------------------- */

static const char *const backend_names[NL_N_BACKENDS] = {"cpu", "cuda", "cudnn"};
static nl_forward_fn *g_fwd[NL_N_BACKENDS];       /* [backend][function id], lazily sized */
static nl_backward_fn *g_bwd[NL_N_BACKENDS];
static int g_ctx[NL_N_BACKENDS] = {NL_BACKEND_CPU};
static int g_ctx_n = 1;
static int g_ctx_device;

static int backend_index(const char *name, size_t len) {
    for (int b = 0; b < NL_N_BACKENDS; b++)
        if (strlen(backend_names[b]) == len && strncmp(backend_names[b], name, len) == 0) return b;
    return -1;
}

int nl_register_impl(const char *function_name, const char *backend,
                     nl_forward_fn forward, nl_backward_fn backward) {
    int id = nl_function_lookup(function_name);
    if (id < 0) return nl_error("register_impl: unknown function '%s'", function_name);
    int b = backend_index(backend, strlen(backend));
    if (b <= NL_BACKEND_CPU) return nl_error("register_impl: unknown device backend '%s'", backend);
    if (!g_fwd[b]) {
        g_fwd[b] = calloc((size_t)nl_registry_size, sizeof(nl_forward_fn));
        g_bwd[b] = calloc((size_t)nl_registry_size, sizeof(nl_backward_fn));
        if (!g_fwd[b] || !g_bwd[b]) return nl_error("out of memory");
    }
    g_fwd[b][id] = forward;
    g_bwd[b][id] = backward;
    return 0;
}

int nl_set_context(const char *backends, int device_id) {
    int list[NL_N_BACKENDS], n = 0;
    const char *p = backends;
    while (p && *p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        int b = backend_index(p, len);
        if (b < 0) return nl_error("set_context: unknown backend '%.*s' (cpu, cuda, cudnn)", (int)len, p);
        bool dup = false;
        for (int k = 0; k < n; k++) dup |= list[k] == b;
        if (!dup && n < NL_N_BACKENDS) list[n++] = b;
        p = comma ? comma + 1 : NULL;
    }
    if (n == 0) return nl_error("set_context: empty backend list");
    for (int k = 0; k < n; k++)
        if (list[k] != NL_BACKEND_CPU && !nl_device_ops_get())
            return nl_error("set_context: backend '%s' is not loaded", backend_names[list[k]]);
    memcpy(g_ctx, list, sizeof list);
    g_ctx_n = n;
    g_ctx_device = device_id;
    return 0;
}

int nl_function_has_impl(int id, const char *backend) {
    int b = backend_index(backend, strlen(backend));
    if (b < 0 || id < 0 || id >= nl_registry_size) return 0;
    if (b == NL_BACKEND_CPU) return 1;
    return g_fwd[b] && g_fwd[b][id] != NULL;
}

/* Picks the first backend of the context implementing the node's function. */
static void choose_impl(nl_func *f) {
    for (int k = 0; k < g_ctx_n; k++) {
        int b = g_ctx[k];
        if (b != NL_BACKEND_CPU && g_fwd[b] && g_fwd[b][f->id]) {
            f->backend = b;
            f->device_id = g_ctx_device;
            f->fwd = g_fwd[b][f->id];
            f->bwd = g_bwd[b][f->id] ? g_bwd[b][f->id] : f->def->backward;
            return;
        }
    }
    f->backend = NL_BACKEND_CPU;
    f->device_id = 0;
    f->fwd = f->def->forward;
    f->bwd = f->def->backward;
}

int nl_func_backend(const nl_func *f) { return f->backend; }
int nl_func_device(const nl_func *f) { return f->device_id; }
const char *nl_func_backend_name(const nl_func *f) { return backend_names[f->backend]; }

/* ---- registry descriptors --------------------------------------------------------- */

static const nl_fdef *fdef(int id) {
    return (id >= 0 && id < nl_registry_size) ? nl_registry[id] : NULL;
}
int nl_function_count(void) { return nl_registry_size; }
int nl_function_lookup(const char *name) {
    for (int i = 0; i < nl_registry_size; i++)
        if (strcmp(nl_registry[i]->name, name) == 0) return i;
    return -1;
}
const char *nl_function_name(int id) { return fdef(id) ? fdef(id)->name : ""; }
int nl_function_n_inputs(int id) { return fdef(id) ? fdef(id)->n_in : 0; }
int nl_function_n_optional_inputs(int id) { return fdef(id) ? fdef(id)->n_opt_in : 0; }
int nl_function_variadic(int id) { return fdef(id) ? fdef(id)->variadic : 0; }
const char *nl_function_input_names(int id) { return fdef(id) ? fdef(id)->in_names : ""; }
int nl_function_n_outputs(int id) { return fdef(id) ? fdef(id)->n_out : 0; }
int nl_function_n_args(int id) { return fdef(id) ? fdef(id)->n_args : 0; }
static const nl_argdef *argdef(int id, int i) {
    const nl_fdef *d = fdef(id);
    return (d && i >= 0 && i < d->n_args) ? &d->args[i] : NULL;
}
const char *nl_function_arg_name(int id, int i) { return argdef(id, i) ? argdef(id, i)->name : ""; }
int nl_function_arg_type(int id, int i) { return argdef(id, i) ? (int)argdef(id, i)->type : -1; }
const char *nl_function_arg_default(int id, int i) { return argdef(id, i) ? argdef(id, i)->deflt : ""; }
const char *nl_function_arg_choices(int id, int i) {
    const nl_argdef *a = argdef(id, i);
    return (a && a->choices) ? a->choices : "";
}
const char *nl_function_doc(int id) { return fdef(id) && fdef(id)->doc ? fdef(id)->doc : ""; }

/* ---- argument defaults and checks ------------------------------------------------- */

static int choice_index(const char *choices, const char *word, size_t len) {
    int idx = 0;
    const char *p = choices;
    while (p && *p) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && strncmp(p, word, n) == 0) return idx;
        idx++;
        p = bar ? bar + 1 : NULL;
    }
    return -1;
}

/* Parses a default written in Lua syntax into an nl_arg. */
static int parse_default(const nl_argdef *a, nl_arg *out) {
    const char *s = a->deflt;
    out->type = a->type;
    out->n = 0;
    if (strcmp(s, "nil") == 0) { out->n = -1; return 0; }
    if (strcmp(s, "true") == 0) { out->n = 1; out->v[0] = 1; return 0; }
    if (strcmp(s, "false") == 0) { out->n = 1; out->v[0] = 0; return 0; }
    if (s[0] == '\'') {
        const char *end = strchr(s + 1, '\'');
        int idx = end ? choice_index(a->choices, s + 1, (size_t)(end - s - 1)) : -1;
        if (idx < 0) return nl_error("internal: bad default %s for '%s'", s, a->name);
        out->n = 1; out->v[0] = idx;
        return 0;
    }
    const char *p = s;
    bool list = false;
    if (*p == '{') { list = true; p++; }
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        if (*p == '}' || !*p) break;
        char *end;
        double d = strtod(p, &end);
        if (end == p || out->n >= NL_MAX_ARG_LEN) return nl_error("internal: bad default %s for '%s'", s, a->name);
        out->v[out->n++] = d;
        p = end;
    }
    (void)list;
    return 0;
}

/* Integers are carried as doubles: keep them where int64 conversions are defined. */
static bool is_integral(double d) { return isfinite(d) && d == floor(d) && fabs(d) < 0x1p62; }
/* Integer arguments are 32-bit, as in NNabla: sizes, kernels, strides, pads, axes, counts
 * and seeds beyond that make the shape arithmetic overflow int64 (or loop for hours). */
#define NL_ARG_INT_MAX 2147483647

static int check_arg(const nl_fdef *d, int k, nl_arg *a) {
    const nl_argdef *ad = &d->args[k];
    if (a->n == -2) return parse_default(ad, a);
    a->type = ad->type;
    if (a->n == -1) {
        if (strcmp(ad->deflt, "nil") != 0) return nl_error("argument '%s' may not be nil", ad->name);
        return 0;
    }
    if (a->n < 0 || a->n > NL_MAX_ARG_LEN)
        return nl_error("argument '%s' has %d entries (at most %d)", ad->name, a->n, NL_MAX_ARG_LEN);
    switch (ad->type) {
    case NL_ARG_INT: case NL_ARG_AXIS:
        if (a->n != 1 || !is_integral(a->v[0]))
            return nl_error("argument '%s' must be an integer", ad->name);
        if (fabs(a->v[0]) > NL_ARG_INT_MAX)
            return nl_error("argument '%s' is %.0f, out of range (integer arguments are within -%d..%d)",
                            ad->name, a->v[0], NL_ARG_INT_MAX, NL_ARG_INT_MAX);
        break;
    case NL_ARG_BOOL:
        if (a->n != 1) return nl_error("argument '%s' must be a boolean", ad->name);
        break;
    case NL_ARG_FLOAT:
        if (a->n != 1) return nl_error("argument '%s' must be a number", ad->name);
        break;
    case NL_ARG_INTS: case NL_ARG_AXES: case NL_ARG_INDEX:
        for (int j = 0; j < a->n; j++) {
            if (!is_integral(a->v[j])) return nl_error("argument '%s' must be a list of integers", ad->name);
            if (fabs(a->v[j]) > NL_ARG_INT_MAX)
                return nl_error("argument '%s' entry %d is %.0f, out of range (integer arguments are within -%d..%d)",
                                ad->name, j + 1, a->v[j], NL_ARG_INT_MAX, NL_ARG_INT_MAX);
        }
        break;
    case NL_ARG_CHOICE: {
        int count = 1;
        for (const char *p = ad->choices; p && *p; p++) count += *p == '|';
        if (a->n != 1 || !is_integral(a->v[0]) || a->v[0] < 0 || a->v[0] >= count)
            return nl_error("argument '%s' must be one of %s", ad->name, ad->choices);
        break;
    }
    case NL_ARG_FLOATS:
        break;
    }
    return 0;
}

/* ---- node creation ----------------------------------------------------------------- */

static void func_free(nl_func *f) {
    if (f->dev_destroy) f->dev_destroy(f);
    if (f->def->destroy) f->def->destroy(f);
    for (int i = 0; i < f->n_in; i++) nl_var_release(f->in[i]);
    for (int o = 0; o < f->n_out; o++)
        if (f->owned_out & (1ull << o)) nl_var_release(f->out[o]);
    for (int s = 0; s < 4; s++)
        if (f->scratch[s]) nl_free(f->scratch[s], (size_t)f->scratch_n[s] * sizeof(float));
    free(f->in);
    free(f->args);
    free(f->oshape);
    free(f);
}

void nl_func_retain(nl_func *f) { if (f) f->refcount++; }
void nl_func_release(nl_func *f) {
    if (!f || --f->refcount > 0) return;
    func_free(f);
}

int nl_set_n_out(nl_func *f, int n) {
    if (n < 1 || n > NL_MAX_OUTPUTS) return nl_error("%d outputs (1 to %d allowed)", n, NL_MAX_OUTPUTS);
    int64_t *s = realloc(f->oshape, (size_t)n * NL_MAX_NDIM * sizeof(int64_t));
    if (!s) return nl_error("out of memory");
    f->oshape = s;
    f->n_out = n;
    return 0;
}

void nl_set_out_shape(nl_func *f, int i, int ndim, const int64_t *shape) {
    f->ondim[i] = ndim;
    for (int k = 0; k < ndim; k++) f->oshape[i * NL_MAX_NDIM + k] = shape[k];
}

int nl_same_shape(const nl_var *a, const nl_var *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

int nl_norm_axis(const char *argname, int64_t axis, int ndim, int *out) {
    int64_t a = axis > 0 ? axis - 1 : ndim + axis;
    if (axis == 0 || a < 0 || a >= ndim)
        return nl_error("%s %lld is out of range for a %d-d input (axes are 1..%d or -%d..-1)",
                        argname, (long long)axis, ndim, ndim, ndim);
    *out = (int)a;
    return 0;
}

static int run_forward_one(nl_func *f) {
    if (f->fwd(f)) return nl_error_prefix("%s", f->def->name);
    return 0;
}

int nl_apply(int id, int n_in, nl_var *const *inputs, const nl_arg *args, int n_args,
             int run_forward, nl_var **outputs, int cap) {
    const nl_fdef *d = fdef(id);
    if (!d) return nl_error("unknown function id %d", id);
    int max_in = d->n_in + d->n_opt_in;
    if (n_in < d->n_in || (!d->variadic && n_in > max_in) || n_in > NL_MAX_INPUTS) {
        if (n_in > NL_MAX_INPUTS) return nl_error("%s: takes at most %d inputs, got %d", d->name, NL_MAX_INPUTS, n_in);
        if (d->variadic) return nl_error("%s: expects at least %d inputs, got %d", d->name, d->n_in, n_in);
        if (d->n_opt_in)
            return nl_error("%s: expects %d to %d inputs (%s), got %d", d->name, d->n_in, max_in, d->in_names, n_in);
        return nl_error("%s: expects %d inputs (%s), got %d", d->name, d->n_in, d->in_names, n_in);
    }
    for (int i = 0; i < n_in; i++)
        if (!inputs[i] && (i < d->n_in || d->variadic))
            return nl_error("%s: input %d is missing", d->name, i + 1);
    if (n_args != d->n_args)
        return nl_error("%s: expects %d arguments, got %d", d->name, d->n_args, n_args);

    nl_func *f = calloc(1, sizeof *f);
    if (!f) return nl_error("out of memory");
    f->refcount = 1;
    f->id = id;
    f->def = d;
    f->training = g_grad_enabled;
    int slots = d->variadic ? n_in : max_in;
    f->n_in = slots;
    f->in = calloc((size_t)(slots ? slots : 1), sizeof(nl_var *));
    f->args = calloc((size_t)(d->n_args ? d->n_args : 1), sizeof(nl_arg));
    if (!f->in || !f->args) { func_free(f); return nl_error("out of memory"); }
    for (int i = 0; i < n_in; i++) { f->in[i] = inputs[i]; nl_var_retain(inputs[i]); }
    for (int k = 0; k < d->n_args; k++) {
        f->args[k] = args[k];
        if (check_arg(d, k, &f->args[k])) { func_free(f); return nl_error_prefix("%s", d->name); }
    }
    choose_impl(f);
    if (nl_set_n_out(f, d->n_out > 0 ? d->n_out : 1)) { func_free(f); return -1; }
    if (d->setup(f)) { func_free(f); return nl_error_prefix("%s", d->name); }
    if (f->n_out > cap) { func_free(f); return nl_error("%s: %d outputs but room for %d", d->name, f->n_out, cap); }

    bool need_grad = false;
    for (int i = 0; i < f->n_in; i++)
        if (f->in[i] && f->in[i]->need_grad) need_grad = true;
    if (!g_grad_enabled) need_grad = false;
    for (int o = 0; o < f->n_out; o++) {
        nl_var *v = nl_var_new(f->ondim[o], f->oshape + o * NL_MAX_NDIM, need_grad);
        if (!v) {
            for (int j = 0; j < o; j++) nl_var_release(f->out[j]);
            func_free(f);
            return nl_error_prefix("%s", d->name);
        }
        f->out[o] = v;
    }
    int status = run_forward ? run_forward_one(f) : 0;
    int n_out = f->n_out;
    for (int o = 0; o < n_out; o++) {
        outputs[o] = f->out[o];        /* the caller owns the var's initial reference */
        if (run_forward && !g_grad_enabled) continue;   /* no graph in no_grad + auto mode */
        outputs[o]->parent = f;
        nl_func_retain(f);
    }
    nl_func_release(f);                /* outputs keep it alive (or it goes now) */
    if (status) {
        for (int o = 0; o < n_out; o++) nl_var_release(outputs[o]);
        return -1;
    }
    return n_out;
}

int nl_func_id(const nl_func *f) { return f->id; }
const char *nl_func_name(const nl_func *f) { return f->def->name; }
int nl_func_n_inputs(const nl_func *f) { return f->n_in; }
int nl_func_n_outputs(const nl_func *f) { return f->n_out; }
nl_var *nl_func_input(nl_func *f, int i) {
    if (i < 0 || i >= f->n_in || !f->in[i]) return NULL;
    nl_var_retain(f->in[i]);
    return f->in[i];
}
nl_var *nl_func_output(nl_func *f, int i) {
    if (i < 0 || i >= f->n_out || !f->out[i]) return NULL;
    nl_var_retain(f->out[i]);
    return f->out[i];
}
const nl_arg *nl_func_arg(const nl_func *f, int i) {
    return (i >= 0 && i < f->def->n_args) ? &f->args[i] : NULL;
}

/* ---- data access for kernels -------------------------------------------------------- */

const float *nl_in_data(nl_func *f, int i) { return nl_array_host(f->in[i]->data, NL_READ); }
float *nl_out_data(nl_func *f, int i) { return nl_array_host(f->out[i]->data, NL_WRITE); }
const float *nl_out_data_r(nl_func *f, int i) { return nl_array_host(f->out[i]->data, NL_READ); }
const float *nl_out_grad(nl_func *f, int i) { return nl_array_host(f->out[i]->grad, NL_READ); }
float *nl_in_grad(nl_func *f, int i, bool accum) {
    return nl_array_host(f->in[i]->grad, accum ? NL_READWRITE : NL_WRITE);
}

float *nl_func_scratch(nl_func *f, int slot, int64_t n) {
    if (f->scratch_n[slot] < n) {
        if (f->scratch[slot]) nl_free(f->scratch[slot], (size_t)f->scratch_n[slot] * sizeof(float));
        f->scratch[slot] = nl_alloc((size_t)n * sizeof(float));
        f->scratch_n[slot] = f->scratch[slot] ? n : 0;
    }
    return f->scratch[slot];
}
