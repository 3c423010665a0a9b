/* bench/fma_peak.c - the cores' single-precision FMA peak, for the benchmark's ceiling rows.
 *
 * Every OpenMP thread (OMP_NUM_THREADS of them, all at once) runs twelve independent chains
 * of fused multiply-adds on whole vector registers: AVX2 (8 floats) and, where the CPU has
 * it, AVX-512 (16 floats). Twelve chains cover the FMA latency of two pipes on current
 * cores, so the loop is bound by FMA throughput alone: no loads, no stores. Prints
 *   PEAK <isa> <threads> <GFLOP/s>
 * for each instruction set the CPU runs, the best of several timed runs of ~0.2 s.
 * No work in the engine can run faster than this; bench/run.lua turns it into the
 * images/s a training step would reach if it did nothing but FMAs at this rate.
 * Usage: fma_peak [runs]
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#define CHAINS 12 /* independent accumulators per thread */

/* flops of one loop iteration: CHAINS FMAs of width floats, 2 flops each */
#define FLOPS_PER_ITER(width) (2.0 * CHAINS * (width))

/* CHAINS accumulators a[k] = a[k] * m + c (one fused multiply-add each: GNU C contracts it),
 * iters times, in vectors of `width` floats compiled for `isa`; returns a sum so the loop is
 * kept. The starting values differ: equal chains would be merged into one by the compiler. */
#define DEFINE_CHAINS(name, isa, width)                                                  \
    typedef float name##_vec __attribute__((vector_size(4 * (width))));                  \
    __attribute__((target(isa))) static float name(long iters)                           \
    {                                                                                     \
        name##_vec a[CHAINS], m, c;                                                       \
        for (int u = 0; u < (width); u++) { m[u] = 0.9999999f; c[u] = 1e-7f; }            \
        for (int k = 0; k < CHAINS; k++)                                                  \
            for (int u = 0; u < (width); u++) a[k][u] = 1.0f + 0.01f * (float)k;          \
        for (long i = 0; i < iters; i++) {                                                \
            _Pragma("GCC unroll 12")                                                      \
            for (int k = 0; k < CHAINS; k++) a[k] = a[k] * m + c;                         \
        }                                                                                 \
        float s = 0.0f;                                                                   \
        for (int k = 0; k < CHAINS; k++)                                                  \
            for (int u = 0; u < (width); u++) s += a[k][u];                               \
        return s;                                                                         \
    }

DEFINE_CHAINS(chains_avx2, "avx2,fma", 8)
DEFINE_CHAINS(chains_avx512, "avx512f", 16)

typedef float (*chains_fn)(long iters);

static volatile float sink; /* keeps every thread's result alive */

/* seconds for every thread to run iters iterations at once */
static double timed(chains_fn fn, long iters)
{
    double t0 = omp_get_wtime();
#pragma omp parallel
    {
        float r = fn(iters);
#pragma omp critical
        sink += r;
    }
    return omp_get_wtime() - t0;
}

/* best GFLOP/s of all threads together over runs timed runs of about 0.2 s each */
static double peak(chains_fn fn, int width, int runs)
{
    long iters = 1000000;
    while (timed(fn, iters) < 0.05) iters *= 2; /* warms the cores up, too */
    iters *= 4;
    double best = 0;
    int threads = omp_get_max_threads();
    for (int r = 0; r < runs; r++) {
        double g = FLOPS_PER_ITER(width) * (double)iters * threads / timed(fn, iters) * 1e-9;
        if (g > best) best = g;
    }
    return best;
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    if (runs < 1) runs = 1;
    int threads = omp_get_max_threads();
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        printf("PEAK avx2 %d %.2f\n", threads, peak(chains_avx2, 8, runs));
    if (__builtin_cpu_supports("avx512f"))
        printf("PEAK avx512 %d %.2f\n", threads, peak(chains_avx512, 16, runs));
    return 0;
}
