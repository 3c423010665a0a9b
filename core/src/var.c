/*
 * var.c - variables: a shape, a data array and a grad array, flags, and the link to the
 * function that produced them (the parent, held strongly). A function holds its inputs
 * strongly and its outputs weakly, so dropping the last reference to a graph's output
 * frees the whole graph, as in NNabla.
 */
#include "function.h"
#include <stdlib.h>
#include <string.h>

static int check_shape(int ndim, const int64_t *shape, int64_t *size) {
    if (ndim < 0 || ndim > NL_MAX_NDIM)
        return nl_error("a shape has %d dimensions; at most %d are supported", ndim, NL_MAX_NDIM);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            char buf[160];
            return nl_error("shape %s has a negative dimension", nl_shape_str(buf, ndim, shape));
        }
    }
    if (nl_check_out_size("shape", ndim, shape)) return -1;   /* no int64 / size_t overflow below */
    int64_t s = 1;
    for (int i = 0; i < ndim; i++) s *= shape[i];
    *size = s;
    return 0;
}

static nl_var *var_alloc(int ndim, const int64_t *shape, int64_t size) {
    nl_var *v = calloc(1, sizeof *v);
    if (!v) { nl_error("out of memory"); return NULL; }
    v->refcount = 1;
    v->ndim = ndim;
    if (ndim) memcpy(v->shape, shape, (size_t)ndim * sizeof(int64_t));
    v->size = size;
    return v;
}

nl_var *nl_var_new(int ndim, const int64_t *shape, int need_grad) {
    int64_t size;
    if (check_shape(ndim, shape, &size)) return NULL;
    nl_var *v = var_alloc(ndim, shape, size);
    if (!v) return NULL;
    v->data = nl_array_new(size);
    v->grad = nl_array_new(size);
    if (!v->data || !v->grad) { nl_var_release(v); return NULL; }
    v->need_grad = need_grad != 0;
    return v;
}

void nl_var_retain(nl_var *v) { if (v) v->refcount++; }

/* Frees a variable whose last reference is gone. Dropping its parent can free the parent
 * node, which drops the node's inputs, and so on down the graph: done by recursion, a
 * chain of a few hundred thousand nodes (a loss summed over many steps in auto-forward
 * mode) overflows the C stack. So a dead variable is put on a list and freed by the
 * outermost nl_var_release, one at a time: the depth stays constant. */
static nl_var *g_dead;
static bool g_draining;

static void var_free(nl_var *v) {
    if (v->parent) {
        nl_func *p = v->parent;
        for (int i = 0; i < p->n_out; i++)
            if (p->out[i] == v) p->out[i] = NULL;
        v->parent = NULL;
        nl_func_release(p);
    }
    if (v->data) nl_array_release(v->data);
    if (v->grad) nl_array_release(v->grad);
    free(v->name);
    free(v);
}

void nl_var_release(nl_var *v) {
    if (!v || --v->refcount > 0) return;
    v->next_dead = g_dead;
    g_dead = v;
    if (g_draining) return;           /* an outer call frees it */
    g_draining = true;
    while (g_dead) {
        nl_var *d = g_dead;
        g_dead = d->next_dead;
        var_free(d);
    }
    g_draining = false;
}

int nl_var_ndim(const nl_var *v) { return v->ndim; }
const int64_t *nl_var_shape(const nl_var *v) { return v->shape; }
int64_t nl_var_size(const nl_var *v) { return v->size; }
nl_array *nl_var_data(nl_var *v) { return v->data; }
nl_array *nl_var_grad(nl_var *v) { return v->grad; }
int nl_var_need_grad(const nl_var *v) { return v->need_grad; }
void nl_var_set_need_grad(nl_var *v, int need_grad) {
    v->need_grad = need_grad != 0;
    if (v->parent) v->need_grad_set = true;
}
int nl_var_persistent(const nl_var *v) { return v->persistent; }
void nl_var_set_persistent(nl_var *v, int persistent) { v->persistent = persistent != 0; }
const char *nl_var_name(const nl_var *v) { return v->name ? v->name : ""; }

int nl_var_set_name(nl_var *v, const char *name) {
    char *copy = NULL;
    if (name && *name) {
        copy = strdup(name);
        if (!copy) return nl_error("out of memory");
    }
    free(v->name);
    v->name = copy;
    return 0;
}

nl_func *nl_var_parent(nl_var *v) {
    if (v->parent) nl_func_retain(v->parent);
    return v->parent;
}

nl_var *nl_var_unlinked(nl_var *v, int need_grad) {
    nl_var *u = var_alloc(v->ndim, v->shape, v->size);
    if (!u) return NULL;
    u->data = v->data;
    u->grad = v->grad;
    nl_array_retain(u->data);
    nl_array_retain(u->grad);
    u->need_grad = need_grad < 0 ? v->need_grad : need_grad != 0;
    u->persistent = v->persistent;
    return u;
}

nl_var *nl_var_view(nl_var *v, int ndim, const int64_t *shape) {
    int64_t size;
    if (check_shape(ndim, shape, &size)) return NULL;
    if (size != v->size) {
        char a[160], b[160];
        nl_error("cannot view a variable of shape %s (%lld elements) as %s (%lld elements)",
                 nl_shape_str(a, v->ndim, v->shape), (long long)v->size,
                 nl_shape_str(b, ndim, shape), (long long)size);
        return NULL;
    }
    nl_var *u = nl_var_unlinked(v, -1);
    if (!u) return NULL;
    u->ndim = ndim;
    if (ndim) memcpy(u->shape, shape, (size_t)ndim * sizeof(int64_t));
    return u;
}

int nl_var_share_arrays(nl_var *v, nl_var *src) {
    if (v->size != src->size) {
        char a[160], b[160];
        return nl_error("cannot share arrays between shapes %s and %s",
                        nl_shape_str(a, v->ndim, v->shape), nl_shape_str(b, src->ndim, src->shape));
    }
    nl_array_retain(src->data);
    nl_array_retain(src->grad);
    nl_array_release(v->data);
    nl_array_release(v->grad);
    v->data = src->data;
    v->grad = src->grad;
    return 0;
}
