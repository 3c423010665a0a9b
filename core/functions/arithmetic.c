/*
 * arithmetic.c - the arithmetic behind the Lua operators on variables:
 * add2, sub2, mul2, div2, pow2, maximum2, minimum2 (numpy broadcasting of size-1 dims)
 * and the scalar variants add_scalar, mul_scalar, r_sub_scalar, r_div_scalar,
 * pow_scalar, r_pow_scalar, maximum_scalar, minimum_scalar. The math is in
 * elementwise_math.h, shared with the CUDA kernels.
 */
#include "elementwise.h"

/* ---- shared setup ---- */

int nl_unary_setup(nl_func *f) {
    nl_set_out_shape(f, 0, nl_in(f, 0)->ndim, nl_in(f, 0)->shape);
    return 0;
}

int nl_bcast_init(nl_bcast *bc, const nl_var *a, const nl_var *b) {
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    bc->ndim = nd;
    bc->size = 1;
    int64_t stride_a = 1, stride_b = 1;
    for (int d = nd - 1; d >= 0; d--) {
        int da = d - (nd - a->ndim), db = d - (nd - b->ndim);
        int64_t la = da >= 0 ? a->shape[da] : 1, lb = db >= 0 ? b->shape[db] : 1;
        if (la != lb && la != 1 && lb != 1) {
            char s1[160], s2[160];
            return nl_error("shapes %s and %s cannot be broadcast together (dimension %d: %lld vs %lld)",
                            nl_shape_str(s1, a->ndim, a->shape), nl_shape_str(s2, b->ndim, b->shape),
                            d + 1, (long long)la, (long long)lb);
        }
        int64_t l = la > lb ? la : lb;
        if (la == 0 || lb == 0) l = 0;
        bc->shape[d] = l;
        bc->sa[d] = la == 1 ? 0 : stride_a;
        bc->sb[d] = lb == 1 ? 0 : stride_b;
        stride_a *= la;
        stride_b *= lb;
        bc->size *= l;
    }
    if (a->size == bc->size && b->size == bc->size) bc->kind = 1;
    else if (b->size == 1 && a->size == bc->size) bc->kind = 2;
    else if (a->size == 1 && b->size == bc->size) bc->kind = 3;
    else bc->kind = 0;
    return 0;
}

int nl_binary_setup(nl_func *f) {
    nl_bcast bc;
    if (nl_bcast_init(&bc, nl_in(f, 0), nl_in(f, 1))) return -1;
    nl_set_out_shape(f, 0, bc.ndim, bc.shape);
    return 0;
}

/* ---- binary ---- */
NL_BINARY_FUNCTION(add2, "y = x0 + x1 (size-1 dimensions broadcast)", 0, 0);
NL_BINARY_FUNCTION(sub2, "y = x0 - x1 (size-1 dimensions broadcast)", 0, 0);
NL_BINARY_FUNCTION(mul2, "y = x0 * x1 (size-1 dimensions broadcast)", 3, 0);
NL_BINARY_FUNCTION(div2, "y = x0 / x1 (size-1 dimensions broadcast)", 3, 0);
NL_BINARY_FUNCTION(pow2, "y = x0 ^ x1 (size-1 dimensions broadcast)", 3, 1);
NL_BINARY_FUNCTION(maximum2, "y = max(x0, x1) element-wise", 3, 0);
NL_BINARY_FUNCTION(minimum2, "y = min(x0, x1) element-wise", 3, 0);

/* ---- scalar ---- */
static const nl_argdef val_one[] = {{"val", NL_ARG_FLOAT, "1", NULL}};

NL_UNARY_FUNCTION(add_scalar, "y = x + val", val_one, 1, 0, 0);
NL_UNARY_FUNCTION(mul_scalar, "y = x * val", val_one, 1, 0, 0);
NL_UNARY_FUNCTION(r_sub_scalar, "y = val - x", val_one, 1, 0, 0);
NL_UNARY_FUNCTION(r_div_scalar, "y = val / x", val_one, 1, 1, 0);
NL_UNARY_FUNCTION(pow_scalar, "y = x ^ val", val_one, 1, 1, 0);
NL_UNARY_FUNCTION(r_pow_scalar, "y = val ^ x", val_one, 1, 0, 1);
NL_UNARY_FUNCTION(maximum_scalar, "y = max(x, val)", val_one, 1, 1, 0);
NL_UNARY_FUNCTION(minimum_scalar, "y = min(x, val)", val_one, 1, 1, 0);
