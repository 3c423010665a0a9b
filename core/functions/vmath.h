/*
 * vmath.h - math for the CPU kernels' inner loops, written so that GCC vectorizes it (no
 * libm calls, no branches; see the Makefile's -fno-trapping-math).
 *
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

#endif
