/*
 * elementwise_math.h - the scalar math of the element-wise functions, written once for
 * the CPU kernels (core/functions) and the CUDA kernels (cuda/), so that the CPU specs
 * test the math the GPU runs.
 *
 * Unary ops:  nl_<op>_fwd(x, v) -> y            nl_<op>_bwd(x, y, dy, v) -> dx
 * Binary ops: nl_<op>_fwd(a, b) -> y            nl_<op>_bwd_a / _bwd_b(a, b, y, dy)
 * v is the op's scalar argument (0 where it has none).
 * Losses (loss_ext.c): see their section at the end.
 */
#ifndef NNLUA_ELEMENTWISE_MATH_H
#define NNLUA_ELEMENTWISE_MATH_H
#include <float.h>
#include <math.h>
#include <stdbool.h>

#ifdef __CUDACC__
#define NL_HD __host__ __device__ static inline
#else
#define NL_HD static inline
#endif

/* ---- binary arithmetic ---- */
NL_HD float nl_add2_fwd(float a, float b) { return a + b; }
NL_HD float nl_add2_bwd_a(float a, float b, float y, float dy) { (void)a; (void)b; (void)y; return dy; }
NL_HD float nl_add2_bwd_b(float a, float b, float y, float dy) { (void)a; (void)b; (void)y; return dy; }
NL_HD float nl_sub2_fwd(float a, float b) { return a - b; }
NL_HD float nl_sub2_bwd_a(float a, float b, float y, float dy) { (void)a; (void)b; (void)y; return dy; }
NL_HD float nl_sub2_bwd_b(float a, float b, float y, float dy) { (void)a; (void)b; (void)y; return -dy; }
NL_HD float nl_mul2_fwd(float a, float b) { return a * b; }
NL_HD float nl_mul2_bwd_a(float a, float b, float y, float dy) { (void)a; (void)y; return dy * b; }
NL_HD float nl_mul2_bwd_b(float a, float b, float y, float dy) { (void)b; (void)y; return dy * a; }
NL_HD float nl_div2_fwd(float a, float b) { return a / b; }
NL_HD float nl_div2_bwd_a(float a, float b, float y, float dy) { (void)a; (void)y; return dy / b; }
NL_HD float nl_div2_bwd_b(float a, float b, float y, float dy) { (void)y; return -dy * a / (b * b); }
NL_HD float nl_pow2_fwd(float a, float b) { return powf(a, b); }
NL_HD float nl_pow2_bwd_a(float a, float b, float y, float dy) { (void)y; return dy * b * powf(a, b - 1.0f); }
NL_HD float nl_pow2_bwd_b(float a, float b, float y, float dy) { (void)b; return a > 0.0f ? dy * y * logf(a) : 0.0f; }
NL_HD float nl_maximum2_fwd(float a, float b) { return a > b ? a : b; }
NL_HD float nl_maximum2_bwd_a(float a, float b, float y, float dy) { (void)y; return a > b ? dy : 0.0f; }
NL_HD float nl_maximum2_bwd_b(float a, float b, float y, float dy) { (void)y; return a > b ? 0.0f : dy; }
NL_HD float nl_minimum2_fwd(float a, float b) { return a < b ? a : b; }
NL_HD float nl_minimum2_bwd_a(float a, float b, float y, float dy) { (void)y; return a < b ? dy : 0.0f; }
NL_HD float nl_minimum2_bwd_b(float a, float b, float y, float dy) { (void)y; return a < b ? 0.0f : dy; }

/* ---- scalar arithmetic (v is the scalar) ---- */
NL_HD float nl_add_scalar_fwd(float x, float v) { return x + v; }
NL_HD float nl_add_scalar_bwd(float x, float y, float dy, float v) { (void)x; (void)y; (void)v; return dy; }
NL_HD float nl_mul_scalar_fwd(float x, float v) { return x * v; }
NL_HD float nl_mul_scalar_bwd(float x, float y, float dy, float v) { (void)x; (void)y; return dy * v; }
NL_HD float nl_r_sub_scalar_fwd(float x, float v) { return v - x; }
NL_HD float nl_r_sub_scalar_bwd(float x, float y, float dy, float v) { (void)x; (void)y; (void)v; return -dy; }
NL_HD float nl_r_div_scalar_fwd(float x, float v) { return v / x; }
NL_HD float nl_r_div_scalar_bwd(float x, float y, float dy, float v) { (void)y; return -dy * v / (x * x); }
NL_HD float nl_pow_scalar_fwd(float x, float v) { return v == 2.0f ? x * x : powf(x, v); }
NL_HD float nl_pow_scalar_bwd(float x, float y, float dy, float v) { (void)y; return v == 2.0f ? 2.0f * x * dy : dy * v * powf(x, v - 1.0f); }
NL_HD float nl_r_pow_scalar_fwd(float x, float v) { return powf(v, x); }
NL_HD float nl_r_pow_scalar_bwd(float x, float y, float dy, float v) { (void)x; return dy * y * logf(v); }
NL_HD float nl_maximum_scalar_fwd(float x, float v) { return x > v ? x : v; }
NL_HD float nl_maximum_scalar_bwd(float x, float y, float dy, float v) { (void)y; return x > v ? dy : 0.0f; }
NL_HD float nl_minimum_scalar_fwd(float x, float v) { return x < v ? x : v; }
NL_HD float nl_minimum_scalar_bwd(float x, float y, float dy, float v) { (void)y; return x < v ? dy : 0.0f; }

/* tanh as a 13/6 rational function on [-7.9, 7.9] (saturated outside): within a couple
 * of float ulps of tanhf and, unlike glibc's tanhf, branch-free so loops vectorize. */
NL_HD float nl_tanhf(float x) {
    const float c = 7.90531110763549805f;
    float xc = x > c ? c : (x < -c ? -c : x);
    float x2 = xc * xc;
    float p = x2 * -2.76076847742355e-16f + 2.00018790482477e-13f;
    p = x2 * p + -8.60467152213735e-11f;
    p = x2 * p + 5.12229709037114e-08f;
    p = x2 * p + 1.48572235717979e-05f;
    p = x2 * p + 6.37261928875436e-04f;
    p = x2 * p + 4.89352455891786e-03f;
    p = xc * p;
    float q = x2 * 1.19825839466702e-06f + 1.18534705686654e-04f;
    q = x2 * q + 2.26843463243900e-03f;
    q = x2 * q + 4.89352518554385e-03f;
    float r = p / q;
    return (x < 4e-4f && x > -4e-4f) ? x : r;
}

/* ---- activations ---- */
NL_HD float nl_identity_fwd(float x, float v) { (void)v; return x; }
NL_HD float nl_identity_bwd(float x, float y, float dy, float v) { (void)x; (void)y; (void)v; return dy; }
NL_HD float nl_tanh_fwd(float x, float v) { (void)v; return nl_tanhf(x); }
NL_HD float nl_tanh_bwd(float x, float y, float dy, float v) { (void)x; (void)v; return dy * (1.0f - y * y); }
NL_HD float nl_sigmoid_fwd(float x, float v) {
    (void)v;
    return x >= 0.0f ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x));
}
NL_HD float nl_sigmoid_bwd(float x, float y, float dy, float v) { (void)x; (void)v; return dy * y * (1.0f - y); }
NL_HD float nl_relu_fwd(float x, float v) { (void)v; return x > 0.0f ? x : 0.0f; }
NL_HD float nl_relu_bwd(float x, float y, float dy, float v) { (void)y; (void)v; return x > 0.0f ? dy : 0.0f; }

/* ---- catalogue activations (NNabla's definitions; v = the first argument) ---- */
NL_HD float nl_sigmoidf(float x) { return x >= 0.0f ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x)); }
/* log(1 + exp(x)) without overflow */
NL_HD float nl_softplusf(float x) { return (x > 0.0f ? x : 0.0f) + log1pf(expf(-fabsf(x))); }
NL_HD float nl_leaky_relu_fwd(float x, float v) { return x > 0.0f ? x : v * x; }
NL_HD float nl_leaky_relu_bwd(float x, float y, float dy, float v) { (void)y; return x > 0.0f ? dy : v * dy; }
NL_HD float nl_elu_fwd(float x, float v) { return x >= 0.0f ? x : v * expm1f(x); }
NL_HD float nl_elu_bwd(float x, float y, float dy, float v) { (void)y; return x >= 0.0f ? dy : dy * v * expf(x); }
/* selu: s = scale, a = alpha */
NL_HD float nl_selu_fwd(float x, float s, float a) { return x > 0.0f ? s * x : s * a * expm1f(x); }
NL_HD float nl_selu_bwd(float x, float dy, float s, float a) { return x > 0.0f ? s * dy : s * a * expf(x) * dy; }
/* gelu: NNabla's tanh approximation 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
NL_HD float nl_gelu_fwd(float x, float v) {
    (void)v;
    const float c = 0.7978845608028654f;
    return 0.5f * x * (1.0f + nl_tanhf(c * (x + 0.044715f * x * x * x)));
}
NL_HD float nl_gelu_bwd(float x, float y, float dy, float v) {
    (void)y; (void)v;
    const float c = 0.7978845608028654f;
    float t = nl_tanhf(c * (x + 0.044715f * x * x * x));
    return dy * (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * c * (1.0f + 0.134145f * x * x));
}
NL_HD float nl_swish_fwd(float x, float v) { (void)v; return x * nl_sigmoidf(x); }
NL_HD float nl_swish_bwd(float x, float y, float dy, float v) { (void)v; float s = nl_sigmoidf(x); return dy * (y + s * (1.0f - y)); }
NL_HD float nl_mish_fwd(float x, float v) { (void)v; return x * nl_tanhf(nl_softplusf(x)); }
NL_HD float nl_mish_bwd(float x, float y, float dy, float v) {
    (void)y; (void)v;
    float t = nl_tanhf(nl_softplusf(x));
    return dy * (t + x * (1.0f - t * t) * nl_sigmoidf(x));
}
/* softplus with beta (v): log(1 + exp(beta x)) / beta */
NL_HD float nl_softplus_fwd(float x, float v) { return nl_softplusf(v * x) / v; }
NL_HD float nl_softplus_bwd(float x, float y, float dy, float v) { (void)y; return dy * nl_sigmoidf(v * x); }
NL_HD float nl_softsign_fwd(float x, float v) { (void)v; return x / (1.0f + fabsf(x)); }
NL_HD float nl_softsign_bwd(float x, float y, float dy, float v) { (void)y; (void)v; float d = 1.0f + fabsf(x); return dy / (d * d); }
NL_HD float nl_relu6_fwd(float x, float v) { (void)v; return x > 0.0f ? (x < 6.0f ? x : 6.0f) : 0.0f; }
NL_HD float nl_relu6_bwd(float x, float y, float dy, float v) { (void)y; (void)v; return (x > 0.0f && x < 6.0f) ? dy : 0.0f; }
NL_HD float nl_hard_sigmoid_fwd(float x, float v) { (void)v; return x > 2.5f ? 1.0f : (x < -2.5f ? 0.0f : 0.2f * x + 0.5f); }
NL_HD float nl_hard_sigmoid_bwd(float x, float y, float dy, float v) { (void)y; (void)v; return (x <= 2.5f && x >= -2.5f) ? 0.2f * dy : 0.0f; }
NL_HD float nl_hard_tanh_fwd(float x, float v) { (void)v; return x > 1.0f ? 1.0f : (x < -1.0f ? -1.0f : x); }
NL_HD float nl_hard_tanh_bwd(float x, float y, float dy, float v) { (void)y; (void)v; return (x >= -1.0f && x <= 1.0f) ? dy : 0.0f; }
NL_HD float nl_log_sigmoid_fwd(float x, float v) { (void)v; return x > 0.0f ? -log1pf(expf(-x)) : x - log1pf(expf(x)); }
NL_HD float nl_log_sigmoid_bwd(float x, float y, float dy, float v) { (void)y; (void)v; return dy * nl_sigmoidf(-x); }
/* prelu, celu: the per-element pieces of the axis-wise kernels */
NL_HD float nl_prelu_fwd(float x, float w) { return x >= 0.0f ? x : w * x; }
NL_HD float nl_prelu_bwd_x(float x, float w, float dy) { return x >= 0.0f ? dy : w * dy; }
NL_HD float nl_prelu_bwd_w(float x, float dy) { return x < 0.0f ? dy * x : 0.0f; }
NL_HD float nl_celu_pos(float x, float a) { return x >= 0.0f ? x : a * expm1f(x); }          /* elu(x)  */
NL_HD float nl_celu_neg(float x, float a) { return x <= 0.0f ? -x : a * expm1f(-x); }        /* elu(-x) */
NL_HD float nl_celu_bwd(float x, float a, float dy_pos, float dy_neg) {
    return (x >= 0.0f ? dy_pos : dy_pos * a * expf(x)) - (x <= 0.0f ? dy_neg : dy_neg * a * expf(-x));
}

/* ---- math ---- */
NL_HD float nl_sign_fwd(float x, float v) { return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : v); }
NL_HD float nl_sign_bwd(float x, float y, float dy, float v) { (void)x; (void)y; (void)v; return dy; }   /* straight-through */
NL_HD float nl_abs_fwd(float x, float v) { (void)v; return fabsf(x); }
NL_HD float nl_abs_bwd(float x, float y, float dy, float v) { (void)y; (void)v; return x < 0.0f ? -dy : dy; }
NL_HD float nl_exp_fwd(float x, float v) { (void)v; return expf(x); }
NL_HD float nl_exp_bwd(float x, float y, float dy, float v) { (void)x; (void)v; return dy * y; }
NL_HD float nl_log_fwd(float x, float v) { (void)v; return logf(x); }
NL_HD float nl_log_bwd(float x, float y, float dy, float v) { (void)y; (void)v; return dy / x; }
NL_HD float nl_sin_fwd(float x, float v) { (void)v; return sinf(x); }
NL_HD float nl_sin_bwd(float x, float y, float dy, float v) { (void)y; (void)v; return dy * cosf(x); }
NL_HD float nl_cos_fwd(float x, float v) { (void)v; return cosf(x); }
NL_HD float nl_cos_bwd(float x, float y, float dy, float v) { (void)y; (void)v; return -dy * sinf(x); }
NL_HD float nl_tan_fwd(float x, float v) { (void)v; return tanf(x); }
NL_HD float nl_tan_bwd(float x, float y, float dy, float v) { (void)x; (void)v; return dy * (1.0f + y * y); }
NL_HD float nl_asin_fwd(float x, float v) { (void)v; return asinf(x); }
NL_HD float nl_asin_bwd(float x, float y, float dy, float v) { (void)y; (void)v; return dy / sqrtf(1.0f - x * x); }
NL_HD float nl_acos_fwd(float x, float v) { (void)v; return acosf(x); }
NL_HD float nl_acos_bwd(float x, float y, float dy, float v) { (void)y; (void)v; return -dy / sqrtf(1.0f - x * x); }
NL_HD float nl_atan_fwd(float x, float v) { (void)v; return atanf(x); }
NL_HD float nl_atan_bwd(float x, float y, float dy, float v) { (void)y; (void)v; return dy / (1.0f + x * x); }
NL_HD float nl_sinh_fwd(float x, float v) { (void)v; return sinhf(x); }
NL_HD float nl_sinh_bwd(float x, float y, float dy, float v) { (void)y; (void)v; return dy * coshf(x); }
NL_HD float nl_cosh_fwd(float x, float v) { (void)v; return coshf(x); }
NL_HD float nl_cosh_bwd(float x, float y, float dy, float v) { (void)y; (void)v; return dy * sinhf(x); }
/* round (half away from zero), ceil, floor: straight-through gradient as in NNabla */
NL_HD float nl_round_fwd(float x, float v) { (void)v; return roundf(x); }
NL_HD float nl_round_bwd(float x, float y, float dy, float v) { (void)x; (void)y; (void)v; return dy; }
NL_HD float nl_ceil_fwd(float x, float v) { (void)v; return ceilf(x); }
NL_HD float nl_ceil_bwd(float x, float y, float dy, float v) { (void)x; (void)y; (void)v; return dy; }
NL_HD float nl_floor_fwd(float x, float v) { (void)v; return floorf(x); }
NL_HD float nl_floor_bwd(float x, float y, float dy, float v) { (void)x; (void)y; (void)v; return dy; }
NL_HD float nl_erf_fwd(float x, float v) { (void)v; return erff(x); }
NL_HD float nl_erf_bwd(float x, float y, float dy, float v) { (void)y; (void)v; return 1.1283791670955126f * expf(-x * x) * dy; }
/* atan2(x0, x1) = atan(x0 / x1) in the right quadrant */
NL_HD float nl_atan2_fwd(float a, float b) { return atan2f(a, b); }
NL_HD float nl_atan2_bwd_a(float a, float b, float y, float dy) { (void)y; return dy * b / (a * a + b * b); }
NL_HD float nl_atan2_bwd_b(float a, float b, float y, float dy) { (void)y; return -dy * a / (a * a + b * b); }

/* ---- logic: 0/1 outputs, no gradient (v = the scalar) ---- */
NL_HD float nl_equal_fwd(float a, float b) { return a == b ? 1.0f : 0.0f; }
NL_HD float nl_not_equal_fwd(float a, float b) { return a != b ? 1.0f : 0.0f; }
NL_HD float nl_greater_fwd(float a, float b) { return a > b ? 1.0f : 0.0f; }
NL_HD float nl_greater_equal_fwd(float a, float b) { return a >= b ? 1.0f : 0.0f; }
NL_HD float nl_less_fwd(float a, float b) { return a < b ? 1.0f : 0.0f; }
NL_HD float nl_less_equal_fwd(float a, float b) { return a <= b ? 1.0f : 0.0f; }
NL_HD float nl_logical_and_fwd(float a, float b) { return (a != 0.0f && b != 0.0f) ? 1.0f : 0.0f; }
NL_HD float nl_logical_or_fwd(float a, float b) { return (a != 0.0f || b != 0.0f) ? 1.0f : 0.0f; }
NL_HD float nl_logical_xor_fwd(float a, float b) { return ((a != 0.0f) != (b != 0.0f)) ? 1.0f : 0.0f; }
NL_HD float nl_equal_scalar_fwd(float x, float v) { return nl_equal_fwd(x, v); }
NL_HD float nl_not_equal_scalar_fwd(float x, float v) { return nl_not_equal_fwd(x, v); }
NL_HD float nl_greater_scalar_fwd(float x, float v) { return nl_greater_fwd(x, v); }
NL_HD float nl_greater_equal_scalar_fwd(float x, float v) { return nl_greater_equal_fwd(x, v); }
NL_HD float nl_less_scalar_fwd(float x, float v) { return nl_less_fwd(x, v); }
NL_HD float nl_less_equal_scalar_fwd(float x, float v) { return nl_less_equal_fwd(x, v); }
NL_HD float nl_logical_and_scalar_fwd(float x, float v) { return nl_logical_and_fwd(x, v); }
NL_HD float nl_logical_or_scalar_fwd(float x, float v) { return nl_logical_or_fwd(x, v); }
NL_HD float nl_logical_xor_scalar_fwd(float x, float v) { return nl_logical_xor_fwd(x, v); }
NL_HD float nl_logical_not_fwd(float x, float v) { (void)v; return x == 0.0f ? 1.0f : 0.0f; }
NL_HD float nl_isnan_fwd(float x, float v) { (void)v; return isnan(x) ? 1.0f : 0.0f; }
NL_HD float nl_isinf_fwd(float x, float v) { (void)v; return isinf(x) ? 1.0f : 0.0f; }
/* reset_nan / reset_inf: the replaced elements get no gradient */
NL_HD float nl_reset_nan_fwd(float x, float v) { return isnan(x) ? v : x; }
NL_HD float nl_reset_nan_bwd(float x, float y, float dy, float v) { (void)y; (void)v; return isnan(x) ? 0.0f : dy; }
NL_HD float nl_reset_inf_fwd(float x, float v) { return isinf(x) ? v : x; }
NL_HD float nl_reset_inf_bwd(float x, float y, float dy, float v) { (void)y; (void)v; return isinf(x) ? 0.0f : dy; }
NL_HD bool nl_where_cond(float c) { return c != 0.0f; }
NL_HD float nl_where_fwd(float c, float t, float e) { return nl_where_cond(c) ? t : e; }

/* ---- element-wise losses (loss_ext.c): two inputs of one shape, one output ----
 * x, t: the cross entropies' input and target; a, b: x0 and x1 of the losses of
 * d = x0 - x1, whose nl_<op>_bwd is x0's gradient (x1's is its negation); v = the
 * argument (delta, epsilon; 0 where there is none). */
/* the sign of d: -1, 0 or 1 */
NL_HD float nl_sgnf(float d) { return (float)((d > 0) - (d < 0)); }
/* log(max(v, FLT_MIN)): the clamped log of the cross entropies of probabilities */
NL_HD float nl_logcf(float v) { return logf(v > FLT_MIN ? v : FLT_MIN); }
/* sigmoid_cross_entropy from logits, stably: max(x, 0) - x t + log(1 + exp(-|x|));
 * dx = dy (sigmoid(x) - t); the target gets no gradient */
NL_HD float nl_sigce_fwd(float x, float t) { return (x > 0.0f ? x : 0.0f) - x * t + log1pf(expf(-fabsf(x))); }
NL_HD float nl_sigce_bwd(float x, float t, float dy) { return dy * (nl_sigmoidf(x) - t); }
/* binary_cross_entropy of probabilities x: -(t log x + (1 - t) log(1 - x)), clamped logs;
 * dx = dy (x - t) / max(x (1 - x), FLT_MIN), dt = dy (log(1 - x) - log(x)) */
NL_HD float nl_bce_fwd(float x, float t) { return -(t * nl_logcf(x) + (1.0f - t) * nl_logcf(1.0f - x)); }
NL_HD float nl_bce_bwd0(float x, float t, float dy) {
    float den = x - x * x;
    if (!(den > FLT_MIN)) den = FLT_MIN;
    return dy * (x - t) / den;
}
NL_HD float nl_bce_bwd1(float x, float t, float dy) { (void)t; return dy * (nl_logcf(1.0f - x) - nl_logcf(x)); }
/* absolute_error: |d|; dx0 = sign(d) dy */
NL_HD float nl_abserr_fwd(float a, float b, float v) { (void)v; return fabsf(a - b); }
NL_HD float nl_abserr_bwd(float a, float b, float dy, float v) { (void)v; return nl_sgnf(a - b) * dy; }
/* huber_loss (v = delta > 0): d^2 where |d| < delta, else delta (2|d| - delta);
 * dx0 = 2 d dy, or 2 delta sign(d) dy */
NL_HD float nl_huber_fwd(float a, float b, float v) {
    const float d = a - b, m = fabsf(d);
    return m < v ? d * d : v * (2.0f * m - v);
}
NL_HD float nl_huber_bwd(float a, float b, float dy, float v) {
    const float d = a - b;
    return (fabsf(d) < v ? 2.0f * d : 2.0f * v * nl_sgnf(d)) * dy;
}
/* epsilon_insensitive_loss (v = epsilon >= 0): max(|d| - epsilon, 0);
 * dx0 = sign(d) dy where |d| > epsilon, else 0 */
NL_HD float nl_eil_fwd(float a, float b, float v) { const float m = fabsf(a - b) - v; return m > 0.0f ? m : 0.0f; }
NL_HD float nl_eil_bwd(float a, float b, float dy, float v) {
    const float d = a - b;
    return (fabsf(d) > v ? nl_sgnf(d) : 0.0f) * dy;
}

#endif
