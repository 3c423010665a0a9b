/*
 * logic.c - comparisons and logical functions with 0/1 float outputs: equal, not_equal,
 * greater, greater_equal, less, less_equal, logical_and, logical_or, logical_xor (numpy
 * broadcasting of size-1 dims), their _scalar variants, logical_not, isnan, isinf; plus
 * reset_nan, reset_inf and where.
 *
 * Gradients: NNabla defines no backward for the 0/1 functions (it raises if one is asked
 * for); here they pass back zero, so graphs such as where(greater(x, 0), x, y) stay
 * differentiable in x_true/x_false. reset_nan/reset_inf pass dy except at the replaced
 * elements; where passes dy to x_true or x_false and zero to condition.
 * The element math is in elementwise_math.h, shared with the CUDA kernels.
 */
#include "elementwise.h"

/* Backward of a function without a gradient: every propagated input gets zero added
 * (accumulating: nothing to do) or written. */
static int nograd_backward(nl_func *f, const bool *prop, const bool *accum) {
    for (int i = 0; i < f->n_in; i++) {
        if (!prop[i] || accum[i]) continue;
        NL_PTR(float *, dx, nl_in_grad(f, i, false));
        memset(dx, 0, (size_t)nl_in(f, i)->size * sizeof(float));
    }
    return 0;
}

/* x0: A, x1: B; y: broadcast(A, B) in {0, 1} */
#define NL_LOGIC_BINARY(OP, DOC)                                                        \
    static int OP##_forward(nl_func *f) {                                               \
        nl_bcast bc;                                                                    \
        if (nl_bcast_init(&bc, nl_in(f, 0), nl_in(f, 1))) return -1;                    \
        NL_PTR(const float *, pa, nl_in_data(f, 0));                                    \
        NL_PTR(const float *, pb, nl_in_data(f, 1));                                    \
        NL_PTR(float *, py, nl_out_data(f, 0));                                         \
        NL_BCAST_LOOP(&bc, py[iy] = nl_##OP##_fwd(pa[ia], pb[ib]));                     \
        return 0;                                                                       \
    }                                                                                   \
    const nl_fdef nl_fdef_##OP = {                                                      \
        .name = #OP, .doc = DOC, .in_names = "x0,x1", .n_in = 2, .n_out = 1,            \
        .setup = nl_binary_setup, .forward = OP##_forward, .backward = nograd_backward, \
        .grad_in_data = 0, .grad_out_data = 0,                                          \
    }

/* x: any shape; y: the same shape in {0, 1}; v = args[0] (or 0) */
#define NL_LOGIC_UNARY(OP, DOC, ARGDEFS, NARGS, SETUP)                                  \
    static int OP##_forward(nl_func *f) {                                               \
        NL_PTR(const float *, px, nl_in_data(f, 0));                                    \
        NL_PTR(float *, py, nl_out_data(f, 0));                                         \
        const float v = (NARGS) ? (float)nl_arg_float(f, 0) : 0.0f;                     \
        const int64_t n = nl_in(f, 0)->size;                                            \
        for (int64_t i = 0; i < n; i++) py[i] = nl_##OP##_fwd(px[i], v);                \
        return 0;                                                                       \
    }                                                                                   \
    const nl_fdef nl_fdef_##OP = {                                                      \
        .name = #OP, .doc = DOC, .in_names = "x", .n_in = 1, .n_out = 1,                \
        .n_args = NARGS, .args = ARGDEFS, .setup = SETUP,                               \
        .forward = OP##_forward, .backward = nograd_backward,                           \
        .grad_in_data = 0, .grad_out_data = 0,                                          \
    }

NL_LOGIC_BINARY(equal, "y = 1 if x0 == x1 else 0 (size-1 dimensions broadcast; no gradient)");
NL_LOGIC_BINARY(not_equal, "y = 1 if x0 ~= x1 else 0 (size-1 dimensions broadcast; no gradient)");
NL_LOGIC_BINARY(greater, "y = 1 if x0 > x1 else 0 (size-1 dimensions broadcast; no gradient)");
NL_LOGIC_BINARY(greater_equal, "y = 1 if x0 >= x1 else 0 (size-1 dimensions broadcast; no gradient)");
NL_LOGIC_BINARY(less, "y = 1 if x0 < x1 else 0 (size-1 dimensions broadcast; no gradient)");
NL_LOGIC_BINARY(less_equal, "y = 1 if x0 <= x1 else 0 (size-1 dimensions broadcast; no gradient)");
NL_LOGIC_BINARY(logical_and, "y = 1 if x0 ~= 0 and x1 ~= 0 else 0 (size-1 dimensions broadcast; no gradient)");
NL_LOGIC_BINARY(logical_or, "y = 1 if x0 ~= 0 or x1 ~= 0 else 0 (size-1 dimensions broadcast; no gradient)");
NL_LOGIC_BINARY(logical_xor, "y = 1 if exactly one of x0, x1 is nonzero else 0 (size-1 dimensions broadcast; no gradient)");

static const nl_argdef no_args[1] = {{"", NL_ARG_INT, "0", NULL}};
static const nl_argdef val_one[] = {{"val", NL_ARG_FLOAT, "1", NULL}};
static const nl_argdef val_bool[] = {{"val", NL_ARG_BOOL, "nil", NULL}};

/* logical_*_scalar: val (true/false) has no default, as in NNabla */
static int logic_bool_setup(nl_func *f) {
    if (!nl_arg_given(f, 0)) return nl_error("argument 'val' (true or false) is required");
    return nl_unary_setup(f);
}

NL_LOGIC_UNARY(equal_scalar, "y = 1 if x == val else 0 (no gradient)", val_one, 1, nl_unary_setup);
NL_LOGIC_UNARY(not_equal_scalar, "y = 1 if x ~= val else 0 (no gradient)", val_one, 1, nl_unary_setup);
NL_LOGIC_UNARY(greater_scalar, "y = 1 if x > val else 0 (no gradient)", val_one, 1, nl_unary_setup);
NL_LOGIC_UNARY(greater_equal_scalar, "y = 1 if x >= val else 0 (no gradient)", val_one, 1, nl_unary_setup);
NL_LOGIC_UNARY(less_scalar, "y = 1 if x < val else 0 (no gradient)", val_one, 1, nl_unary_setup);
NL_LOGIC_UNARY(less_equal_scalar, "y = 1 if x <= val else 0 (no gradient)", val_one, 1, nl_unary_setup);
NL_LOGIC_UNARY(logical_and_scalar, "y = 1 if x ~= 0 and val else 0 (val: true/false, required; no gradient)",
               val_bool, 1, logic_bool_setup);
NL_LOGIC_UNARY(logical_or_scalar, "y = 1 if x ~= 0 or val else 0 (val: true/false, required; no gradient)",
               val_bool, 1, logic_bool_setup);
NL_LOGIC_UNARY(logical_xor_scalar, "y = 1 if (x ~= 0) ~= val else 0 (val: true/false, required; no gradient)",
               val_bool, 1, logic_bool_setup);
NL_LOGIC_UNARY(logical_not, "y = 1 if x == 0 else 0 (no gradient)", no_args, 0, nl_unary_setup);
NL_LOGIC_UNARY(isnan, "y = 1 where x is NaN else 0 (no gradient)", no_args, 0, nl_unary_setup);
NL_LOGIC_UNARY(isinf, "y = 1 where x is inf or -inf else 0 (no gradient)", no_args, 0, nl_unary_setup);

static const nl_argdef val_zero[] = {{"val", NL_ARG_FLOAT, "0", NULL}};
NL_UNARY_FUNCTION(reset_nan, "y = val where x is NaN, else x (no gradient to the replaced elements)", val_zero, 1, 1, 0);
NL_UNARY_FUNCTION(reset_inf, "y = val where x is inf or -inf, else x (no gradient to the replaced elements)",
                  val_zero, 1, 1, 0);

/* ---- where ---- */

/* condition: C = (c_1..c_k); x_true, x_false: (c_1..c_k, inner...) of one shape; y: that
 * shape. Condition's shape must be a leading part of x_true's (NNabla's rule). */
static int where_setup(nl_func *f) {
    const nl_var *c = nl_in(f, 0), *t = nl_in(f, 1), *e = nl_in(f, 2);
    char s1[160], s2[160], s3[160];
    if (!nl_same_shape(t, e))
        return nl_error("x_true %s and x_false %s must have the same shape",
                        nl_shape_str(s1, t->ndim, t->shape), nl_shape_str(s2, e->ndim, e->shape));
    bool ok = c->ndim <= t->ndim;
    for (int d = 0; ok && d < c->ndim; d++) ok = c->shape[d] == t->shape[d];
    if (!ok)
        return nl_error("condition %s must match the leading dimensions of x_true %s and x_false %s",
                        nl_shape_str(s1, c->ndim, c->shape), nl_shape_str(s2, t->ndim, t->shape),
                        nl_shape_str(s3, e->ndim, e->shape));
    nl_set_out_shape(f, 0, t->ndim, t->shape);
    return 0;
}

static int64_t where_inner(nl_func *f) {
    int64_t cs = nl_in(f, 0)->size;
    return cs ? nl_in(f, 1)->size / cs : 0;
}

static int where_forward(nl_func *f) {
    NL_PTR(const float *, c, nl_in_data(f, 0));
    NL_PTR(const float *, t, nl_in_data(f, 1));
    NL_PTR(const float *, e, nl_in_data(f, 2));
    NL_PTR(float *, y, nl_out_data(f, 0));
    const int64_t nc = nl_in(f, 0)->size, inner = where_inner(f);
    for (int64_t k = 0; k < nc; k++) {
        const int64_t base = k * inner;
        const float ck = c[k];
        for (int64_t i = 0; i < inner; i++) y[base + i] = nl_where_fwd(ck, t[base + i], e[base + i]);
    }
    return 0;
}

/* dcondition = 0; dx_true = dy where condition, dx_false = dy elsewhere. Inputs are written
 * in order, so when one variable fills two slots the engine's accum flag for the later
 * slot adds to what the earlier one wrote. */
static int where_backward(nl_func *f, const bool *prop, const bool *accum) {
    if (prop[0] && !accum[0]) {
        NL_PTR(float *, dc, nl_in_grad(f, 0, false));
        memset(dc, 0, (size_t)nl_in(f, 0)->size * sizeof(float));
    }
    if (!prop[1] && !prop[2]) return 0;
    NL_PTR(const float *, c, nl_in_data(f, 0));
    NL_PTR(const float *, dy, nl_out_grad(f, 0));
    const int64_t nc = nl_in(f, 0)->size, inner = where_inner(f);
    for (int s = 1; s <= 2; s++) {
        if (!prop[s]) continue;
        NL_PTR(float *, dx, nl_in_grad(f, s, accum[s]));
        const bool take_true = s == 1;
        for (int64_t k = 0; k < nc; k++) {
            const int64_t base = k * inner;
            const float m = (nl_where_cond(c[k]) == take_true) ? 1.0f : 0.0f;
            if (accum[s]) for (int64_t i = 0; i < inner; i++) dx[base + i] += m * dy[base + i];
            else for (int64_t i = 0; i < inner; i++) dx[base + i] = m * dy[base + i];
        }
    }
    return 0;
}

const nl_fdef nl_fdef_where = {
    .name = "where",
    .doc = "y = x_true where condition ~= 0, else x_false; condition's shape is a leading part of "
           "x_true's (its values spread over the rest); gradients go to x_true and x_false",
    .in_names = "condition,x_true,x_false", .n_in = 3, .n_out = 1,
    .setup = where_setup, .forward = where_forward, .backward = where_backward,
    .grad_in_data = 1, .grad_out_data = 0,
};
