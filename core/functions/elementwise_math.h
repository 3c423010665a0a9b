/*
 * elementwise_math.h - the scalar math of the element-wise functions, written once for
 * the CPU kernels (core/functions) and the CUDA kernels (cuda/), so that the CPU specs
 * test the math the GPU runs.
 *
 * Unary ops:  nl_<op>_fwd(x, v) -> y            nl_<op>_bwd(x, y, dy, v) -> dx
 * Binary ops: nl_<op>_fwd(a, b) -> y            nl_<op>_bwd_a / _bwd_b(a, b, y, dy)
 * v is the op's scalar argument (0 where it has none).
 */
#ifndef NNLUA_ELEMENTWISE_MATH_H
#define NNLUA_ELEMENTWISE_MATH_H
#include <math.h>

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

#endif
