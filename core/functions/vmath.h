/*
 * vmath.h - math for the CPU kernels' inner loops, written so that GCC vectorizes it (no
 * libm calls, no branches; see the Makefile's -fno-trapping-math).
 *
 * nl_vsum(x, n): a sum in float blocks (vectorized), accumulated in double;
 * nl_vsumsq_c(x, n, m) = sum (x - m)^2 and nl_vdot_c(a, x, n, m) = sum a (x - m) likewise.
 * nl_vexpf(x): exp(x) within about 2 ulp of expf for x in [-87.3, 88]; 0 below (where
 * expf is denormal or 0), +inf above 88 (expf overflows at 88.72); NaN gives NaN. Cody-Waite reduction
 * x = n ln2 + f, |f| <= ln2/2, then Cephes' degree-6 polynomial for exp(f), scaled by 2^n
 * built in the exponent bits.
 */
#ifndef NNLUA_VMATH_H
#define NNLUA_VMATH_H
#include <stdint.h>
#include <string.h>

static inline float nl_bits_to_float(uint32_t u) { float f; memcpy(&f, &u, sizeof f); return f; }
static inline uint32_t nl_float_to_bits(float f) { uint32_t u; memcpy(&u, &f, sizeof u); return u; }

static inline float nl_vexpf(float x) {
    const float hi = 88.0f, lo = -87.3365447504f;
    float xc = x > hi ? hi : x;
    xc = xc < lo ? lo : xc;
    /* n = round(x / ln2): adding 1.5 * 2^23 leaves the integer in the low mantissa bits */
    const float magic = 12582912.0f;
    float t = xc * 1.44269504088896341f + magic;
    uint32_t nbits = nl_float_to_bits(t);
    float n = t - magic;
    float f = xc - n * 0.693359375f;
    f = f - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * f + 1.3981999507e-3f;
    p = p * f + 8.3334519073e-3f;
    p = p * f + 4.1665795894e-2f;
    p = p * f + 1.6666665459e-1f;
    p = p * f + 5.0000001201e-1f;
    p = p * (f * f) + f + 1.0f;
    /* 2^n: n = nbits - bits(magic), in [-126, 127] after the clamp; 127 + n in [1, 254] */
    uint32_t e = (nbits - 0x4B400000u + 127u) << 23;
    float r = p * nl_bits_to_float(e);
    r = x < lo ? 0.0f : r;
    return x > hi ? __builtin_inff() : r;
}

/* sum of x[0..n) in float blocks of 1024 (vectorized), the blocks added in double */
static inline double nl_vsum(const float *restrict x, int64_t n) {
    double total = 0;
    for (int64_t i0 = 0; i0 < n; i0 += 1024) {
        const int64_t i1 = i0 + 1024 < n ? i0 + 1024 : n;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int64_t i = i0; i < i1; i++) s += x[i];
        total += s;
    }
    return total;
}

/* sum of (x[i] - m)^2, and of a[i] * (x[i] - m), the same way */
static inline double nl_vsumsq_c(const float *restrict x, int64_t n, float m) {
    double total = 0;
    for (int64_t i0 = 0; i0 < n; i0 += 1024) {
        const int64_t i1 = i0 + 1024 < n ? i0 + 1024 : n;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int64_t i = i0; i < i1; i++) { float d = x[i] - m; s += d * d; }
        total += s;
    }
    return total;
}

static inline double nl_vdot_c(const float *restrict a, const float *restrict x, int64_t n, float m) {
    double total = 0;
    for (int64_t i0 = 0; i0 < n; i0 += 1024) {
        const int64_t i1 = i0 + 1024 < n ? i0 + 1024 : n;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int64_t i = i0; i < i1; i++) s += a[i] * (x[i] - m);
        total += s;
    }
    return total;
}

#endif
