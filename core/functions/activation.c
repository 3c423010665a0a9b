/*
 * activation.c - element-wise activations: identity, tanh, sigmoid, relu.
 * x: any shape; y: the same shape. The math is in elementwise_math.h.
 */
#include "elementwise.h"

static const nl_argdef no_args[1] = {{"", NL_ARG_INT, "0", NULL}};
NL_UNARY_FUNCTION(identity, "y = x", no_args, 0, 0, 0);
NL_UNARY_FUNCTION(tanh, "y = tanh(x)", no_args, 0, 0, 1);
NL_UNARY_FUNCTION(sigmoid, "y = 1 / (1 + exp(-x))", no_args, 0, 0, 1);
NL_UNARY_FUNCTION(relu, "y = max(0, x)", no_args, 0, 1, 0);
