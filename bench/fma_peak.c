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
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#define CHAINS 12 /* independent accumulators per thread */

/* flops of one loop iteration: CHAINS FMAs of width floats, 2 flops each */
#define FLOPS_PER_ITER(width) (2.0 * CHAINS * (width))

/* acc[12] = acc * m + c, iters times; returns a sum so the loop is kept */
__attribute__((target("avx2,fma"))) static float chains_avx2(long iters)
{
    const __m256 m = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
    /* distinct starting values: equal chains would be merged into one by the compiler */
    __m256 a0 = _mm256_set1_ps(1.00f), a1 = _mm256_set1_ps(1.01f), a2 = _mm256_set1_ps(1.02f);
    __m256 a3 = _mm256_set1_ps(1.03f), a4 = _mm256_set1_ps(1.04f), a5 = _mm256_set1_ps(1.05f);
    __m256 a6 = _mm256_set1_ps(1.06f), a7 = _mm256_set1_ps(1.07f), a8 = _mm256_set1_ps(1.08f);
    __m256 a9 = _mm256_set1_ps(1.09f), a10 = _mm256_set1_ps(1.10f), a11 = _mm256_set1_ps(1.11f);
    for (long i = 0; i < iters; i++) {
        a0 = _mm256_fmadd_ps(a0, m, c);   a1 = _mm256_fmadd_ps(a1, m, c);
        a2 = _mm256_fmadd_ps(a2, m, c);   a3 = _mm256_fmadd_ps(a3, m, c);
        a4 = _mm256_fmadd_ps(a4, m, c);   a5 = _mm256_fmadd_ps(a5, m, c);
        a6 = _mm256_fmadd_ps(a6, m, c);   a7 = _mm256_fmadd_ps(a7, m, c);
        a8 = _mm256_fmadd_ps(a8, m, c);   a9 = _mm256_fmadd_ps(a9, m, c);
        a10 = _mm256_fmadd_ps(a10, m, c); a11 = _mm256_fmadd_ps(a11, m, c);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0];
}

/* the same with 16-float registers */
__attribute__((target("avx512f"))) static float chains_avx512(long iters)
{
    const __m512 m = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f);
    __m512 a0 = _mm512_set1_ps(1.00f), a1 = _mm512_set1_ps(1.01f), a2 = _mm512_set1_ps(1.02f);
    __m512 a3 = _mm512_set1_ps(1.03f), a4 = _mm512_set1_ps(1.04f), a5 = _mm512_set1_ps(1.05f);
    __m512 a6 = _mm512_set1_ps(1.06f), a7 = _mm512_set1_ps(1.07f), a8 = _mm512_set1_ps(1.08f);
    __m512 a9 = _mm512_set1_ps(1.09f), a10 = _mm512_set1_ps(1.10f), a11 = _mm512_set1_ps(1.11f);
    for (long i = 0; i < iters; i++) {
        a0 = _mm512_fmadd_ps(a0, m, c);   a1 = _mm512_fmadd_ps(a1, m, c);
        a2 = _mm512_fmadd_ps(a2, m, c);   a3 = _mm512_fmadd_ps(a3, m, c);
        a4 = _mm512_fmadd_ps(a4, m, c);   a5 = _mm512_fmadd_ps(a5, m, c);
        a6 = _mm512_fmadd_ps(a6, m, c);   a7 = _mm512_fmadd_ps(a7, m, c);
        a8 = _mm512_fmadd_ps(a8, m, c);   a9 = _mm512_fmadd_ps(a9, m, c);
        a10 = _mm512_fmadd_ps(a10, m, c); a11 = _mm512_fmadd_ps(a11, m, c);
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    return _mm512_reduce_add_ps(s);
}

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
