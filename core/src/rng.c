/*
 * rng.c - the engine's random number generator: xoshiro256** seeded through splitmix64.
 * nn.seed(n) makes initializers, shuffles and stochastic functions reproducible; the
 * default seed is NNabla's 313.
 */
#include "internal.h"
#include <math.h>

static uint64_t g_s[4];
static uint64_t g_seed;
static int g_seeded;
static int g_have_spare;
static double g_spare;

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void nl_seed(uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) g_s[i] = splitmix64(&x);
    g_seed = seed;
    g_seeded = 1;
    g_have_spare = 0;
}

uint64_t nl_seed_value(void) { return g_seed; }

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t nl_rng_next(void) {
    if (!g_seeded) nl_seed(313);
    uint64_t r = rotl(g_s[1] * 5, 7) * 9, t = g_s[1] << 17;
    g_s[2] ^= g_s[0]; g_s[3] ^= g_s[1]; g_s[1] ^= g_s[2]; g_s[0] ^= g_s[3];
    g_s[2] ^= t; g_s[3] = rotl(g_s[3], 45);
    return r;
}

/* Uniform in [0, 1) with 53 random bits. */
double nl_rng_uniform01(void) { return (double)(nl_rng_next() >> 11) * 0x1.0p-53; }

/* Standard normal by the Marsaglia polar method. */
double nl_rng_normal(void) {
    if (g_have_spare) { g_have_spare = 0; return g_spare; }
    double u, v, s;
    do {
        u = 2.0 * nl_rng_uniform01() - 1.0;
        v = 2.0 * nl_rng_uniform01() - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    double m = sqrt(-2.0 * log(s) / s);
    g_spare = v * m;
    g_have_spare = 1;
    return u * m;
}

int nl_rand_uniform(nl_array *a, float low, float high) {
    float *p = nl_array_host(a, NL_WRITE);
    if (!p) return -1;
    int64_t n = nl_array_size(a);
    for (int64_t i = 0; i < n; i++) p[i] = (float)(low + (high - low) * nl_rng_uniform01());
    return 0;
}

int nl_rand_normal(nl_array *a, float mean, float stddev) {
    float *p = nl_array_host(a, NL_WRITE);
    if (!p) return -1;
    int64_t n = nl_array_size(a);
    for (int64_t i = 0; i < n; i++) p[i] = (float)(mean + stddev * nl_rng_normal());
    return 0;
}

int nl_rand_permutation(int64_t n, int64_t *out, uint64_t seed) {
    if (n < 0) return nl_error("permutation of negative length %lld", (long long)n);
    uint64_t x = seed;
    for (int64_t i = 0; i < n; i++) out[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(splitmix64(&x) % (uint64_t)(i + 1));
        int64_t t = out[i]; out[i] = out[j]; out[j] = t;
    }
    return 0;
}
