/*
 * graph.c - running a graph: the functions under a variable in topological order,
 * forward with clear_buffer / clear_no_need_grad, and backward with NNabla's
 * accumulation rule:
 *   - an intermediate variable's gradient is overwritten by the first function that
 *     back-propagates into it in this pass and accumulated by the later ones (fan-out);
 *   - a leaf's gradient (a parameter or input) is always accumulated, unless it is in
 *     the lazily-zeroed state, where the first write overwrites.
 * need_grad of an intermediate follows its inputs at every run (as NNabla's forward
 * recomputes it): a leaf switched to need_grad after the graph was built gets gradients,
 * unless the user set the intermediate's own need_grad or the node was made without grad.
 * Backward refuses to run a function whose saved data is gone (cleared by
 * forward{clear_buffer} or an earlier backward{clear_buffer}, or never computed) rather
 * than read it as zeros.
 * The traversal buffers are kept between calls: a step on an existing graph allocates
 * nothing here.
 */
#include "function.h"
#include <stdlib.h>

static nl_func **g_order;       /* topological order of the last traversal */
static int g_order_cap;
typedef struct { nl_func *f; int next_in; } frame;
static frame *g_stack;          /* DFS stack */
static int g_stack_cap;
static uint64_t g_pass;         /* traversal stamp */

static int grow(void **buf, int *cap, int need, size_t elem) {
    if (need <= *cap) return 0;
    int n = *cap ? *cap : 64;
    while (n < need) n *= 2;
    void *p = realloc(*buf, (size_t)n * elem);
    if (!p) return nl_error("out of memory");
    *buf = p;
    *cap = n;
    return 0;
}

/* Post-order DFS from root's parent over parents of inputs. Fills g_order; returns count. */
static int topo_order(nl_var *root) {
    uint64_t stamp = ++g_pass;
    int n_order = 0, sp = 0;
    if (grow((void **)&g_stack, &g_stack_cap, 1, sizeof *g_stack)) return -1;
    g_stack[sp++] = (frame){root->parent, 0};
    root->parent->stamp = stamp;
    while (sp > 0) {
        frame *top = &g_stack[sp - 1];
        nl_func *f = top->f;
        if (top->next_in < f->n_in) {
            nl_var *x = f->in[top->next_in++];
            if (x && x->parent && x->parent->stamp != stamp) {
                x->parent->stamp = stamp;
                if (grow((void **)&g_stack, &g_stack_cap, sp + 1, sizeof *g_stack)) return -1;
                g_stack[sp++] = (frame){x->parent, 0};
            }
        } else {
            if (grow((void **)&g_order, &g_order_cap, n_order + 1, sizeof *g_order)) return -1;
            g_order[n_order++] = f;
            sp--;
        }
    }
    return n_order;
}

/* An output slot whose variable was dropped (a multi-output function whose sibling
 * output nobody kept) gets a private variable again so that kernels can write it. */
static int revive_outputs(nl_func *f) {
    for (int o = 0; o < f->n_out; o++) {
        if (f->out[o]) continue;
        /* A parentless variable owned by the node (no cycle); freed with the node. */
        nl_var *v = nl_var_new(f->ondim[o], f->oshape + o * NL_MAX_NDIM, 0);
        if (!v) return nl_error_prefix("%s: output %d", f->def->name, o + 1);
        f->out[o] = v;
        f->owned_out |= 1ull << o;
    }
    return 0;
}

/* need_grad of the outputs of g_order[0..n) from their inputs, in topological order. */
static void refresh_need_grad(int n) {
    for (int k = 0; k < n; k++) {
        nl_func *f = g_order[k];
        bool ng = false;
        if (f->training)
            for (int i = 0; i < f->n_in && !ng; i++) ng = f->in[i] && f->in[i]->need_grad;
        for (int o = 0; o < f->n_out; o++)
            if (f->out[o] && !f->out[o]->need_grad_set) f->out[o]->need_grad = ng;
    }
}

/* The data f's backward reads (def->grad_in_data / grad_out_data) must still be there:
 * intermediates and outputs whose arrays were cleared (or never computed) would read as
 * zeros. Leaves that were never set do read as zeros, as in forward. */
static int check_saved_data(const nl_func *f) {
    const uint32_t in_bits = f->def->grad_in_data, out_bits = f->def->grad_out_data;
    for (int i = 0; i < f->n_in; i++) {
        const nl_var *x = f->in[i];
        if (!x || !x->parent || !(in_bits & (1u << (i < 31 ? i : 31)))) continue;
        if (!nl_array_has_storage(x->data))
            return nl_error("backward: %s: the data of input %d (made by %s) is gone: it was cleared "
                            "(forward{clear_buffer = true} or backward{clear_buffer = true} before) or "
                            "never computed; run forward (without clear_buffer) before backward",
                            f->def->name, i + 1, x->parent->def->name);
    }
    for (int o = 0; o < f->n_out; o++) {
        const nl_var *y = f->out[o];
        if (!y || !(out_bits & (1u << (o < 31 ? o : 31)))) continue;
        if (!nl_array_has_storage(y->data))
            return nl_error("backward: %s: the data of output %d is gone: it was cleared "
                            "(backward{clear_buffer = true} before) or never computed; run forward "
                            "before backward", f->def->name, o + 1);
    }
    return 0;
}

int nl_var_forward(nl_var *root, int clear_buffer, int clear_no_need_grad) {
    if (!root->parent)
        return nl_error("forward: the variable has no parent function (it is a leaf: set its .d instead)");
    int n = topo_order(root);
    if (n < 0) return -1;
    refresh_need_grad(n);
    bool clearing = clear_buffer || clear_no_need_grad;
    if (clearing) {
        /* Count consumers of each intermediate input and whether backward needs its data. */
        for (int k = 0; k < n; k++)
            for (int i = 0; i < g_order[k]->n_in; i++) {
                nl_var *x = g_order[k]->in[i];
                if (x) { x->consumers_left = 0; x->keep_for_grad = false; }
            }
        for (int k = 0; k < n; k++) {
            nl_func *f = g_order[k];
            for (int i = 0; i < f->n_in; i++) {
                nl_var *x = f->in[i];
                if (!x) continue;
                x->consumers_left++;
                if (f->def->grad_in_data & (1u << (i < 31 ? i : 31))) x->keep_for_grad = true;
                if (x->parent) {
                    for (int o = 0; o < x->parent->n_out; o++)
                        if (x->parent->out[o] == x && (x->parent->def->grad_out_data & (1u << (o < 31 ? o : 31))))
                            x->keep_for_grad = true;
                }
            }
        }
    }
    for (int k = 0; k < n; k++) {
        nl_func *f = g_order[k];
        if (revive_outputs(f)) return -1;
        for (int i = 0; i < f->n_in; i++) {
            nl_var *x = f->in[i];
            if (x && !x->parent && !nl_array_has_storage(x->data) && !x->persistent) {
                /* A leaf that was never set reads as zeros; that is allowed. */
            }
        }
        if (nl_interrupted_take()) return nl_error("forward: interrupted");
        if (f->fwd(f)) return nl_error_prefix("forward: %s", f->def->name);
        if (!clearing) continue;
        for (int i = 0; i < f->n_in; i++) {
            nl_var *x = f->in[i];
            if (!x || !x->parent || x->persistent) continue;
            if (--x->consumers_left > 0) continue;
            if (clear_buffer || !x->keep_for_grad) nl_array_clear(x->data);
        }
    }
    return 0;
}

int nl_var_backward(nl_var *root, int clear_buffer) {
    if (!root->parent)
        return nl_error("backward: the variable has no parent function (it is a leaf)");
    int n = topo_order(root);
    if (n < 0) return -1;
    refresh_need_grad(n);
    uint64_t pass = g_pass;
    root->grad_stamp = pass;   /* the root's gradient is given */
    bool prop[NL_MAX_INPUTS], accum[NL_MAX_INPUTS];
    for (int k = n - 1; k >= 0; k--) {
        nl_func *f = g_order[k];
        bool any = false;
        for (int i = 0; i < f->n_in; i++) {
            prop[i] = f->in[i] && f->in[i]->need_grad;
            any |= prop[i];
        }
        if (any) {
            if (revive_outputs(f)) return -1;
            for (int o = 0; o < f->n_out; o++)
                if (f->out[o]->grad_stamp != pass) nl_array_zero(f->out[o]->grad);
            for (int i = 0; i < f->n_in; i++) {
                if (!prop[i]) { accum[i] = false; continue; }
                nl_var *x = f->in[i];
                if (x->grad_stamp == pass) accum[i] = true;
                else if (!x->parent) accum[i] = !nl_array_zeroing(x->grad);
                else accum[i] = false;
                x->grad_stamp = pass;
            }
            if (nl_interrupted_take()) return nl_error("backward: interrupted");
            if (check_saved_data(f)) return -1;
            if (f->bwd(f, prop, accum)) return nl_error_prefix("backward: %s", f->def->name);
        }
        if (clear_buffer) {
            for (int o = 0; o < f->n_out; o++) {
                nl_var *y = f->out[o];
                if (!y || y == root || y->persistent) continue;
                nl_array_clear(y->grad);
                nl_array_clear(y->data);
            }
        }
    }
    return 0;
}

int nl_func_run_forward(nl_func *f) {
    if (revive_outputs(f)) return -1;
    if (f->fwd(f)) return nl_error_prefix("forward: %s", f->def->name);
    return 0;
}

int nl_func_run_backward(nl_func *f) {
    bool prop[NL_MAX_INPUTS], accum[NL_MAX_INPUTS], any = false;
    for (int i = 0; i < f->n_in; i++) {
        prop[i] = f->in[i] && f->in[i]->need_grad;
        accum[i] = false;
        any |= prop[i];
    }
    if (!any) return 0;
    if (revive_outputs(f)) return -1;
    if (check_saved_data(f)) return -1;
    if (f->bwd(f, prop, accum)) return nl_error_prefix("backward: %s", f->def->name);
    return 0;
}

int nl_var_functions(nl_var *v, nl_func **out, int cap) {
    if (!v->parent) return 0;
    int n = topo_order(v);
    if (n < 0) return -1;
    for (int k = 0; k < n && k < cap; k++) {
        out[k] = g_order[k];
        nl_func_retain(out[k]);
    }
    return n;
}
