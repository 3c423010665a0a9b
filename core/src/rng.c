/*
 * rng.c - the engine's random number generator: xoshiro256** seeded through splitmix64.
 * nn.seed(n) makes initializers, shuffles and stochastic functions reproducible; the
 * default seed is NNabla's 313. The generator is an nl_rng state; functions given a seed
 * (dropout(x, p, seed) and the like) keep one of their own, seeded the same way.
 */
#include "internal.h"
#include <math.h>

static nl_rng g_rng;
static uint64_t g_seed;
static int g_seeded;

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void nl_rng_init(nl_rng *g, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) g->s[i] = splitmix64(&x);
    g->have_spare = 0;
    g->spare = 0;
}

void nl_seed(uint64_t seed) {
    nl_rng_init(&g_rng, seed);
    g_seed = seed;
    g_seeded = 1;
}

uint64_t nl_seed_value(void) { return g_seed; }

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static nl_rng *rng_of(nl_rng *g) {
    if (g) return g;
    if (!g_seeded) nl_seed(313);
    return &g_rng;
}

uint64_t nl_rngs_next(nl_rng *g) {
    uint64_t *s = rng_of(g)->s;
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = rotl(s[3], 45);
    return r;
}

/* Uniform in [0, 1) with 53 random bits. */
double nl_rngs_uniform01(nl_rng *g) { return (double)(nl_rngs_next(g) >> 11) * 0x1.0p-53; }

/* Uniform integer in [0, n) without modulo bias (rejection on the top of the range). */
int64_t nl_rngs_below(nl_rng *g, int64_t n) {
    if (n <= 1) return 0;
    const uint64_t un = (uint64_t)n, lim = UINT64_MAX - UINT64_MAX % un;
    uint64_t r;
    do r = nl_rngs_next(g); while (r >= lim);
    return (int64_t)(r % un);
}

/* Standard normal by the Marsaglia polar method. */
double nl_rngs_normal(nl_rng *g) {
    g = rng_of(g);
    if (g->have_spare) { g->have_spare = 0; return g->spare; }
    double u, v, s;
    do {
        u = 2.0 * nl_rngs_uniform01(g) - 1.0;
        v = 2.0 * nl_rngs_uniform01(g) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    double m = sqrt(-2.0 * log(s) / s);
    g->spare = v * m;
    g->have_spare = 1;
    return u * m;
}

uint64_t nl_rng_next(void) { return nl_rngs_next(NULL); }
double nl_rng_uniform01(void) { return nl_rngs_uniform01(NULL); }
double nl_rng_normal(void) { return nl_rngs_normal(NULL); }

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
