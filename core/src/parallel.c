/*
 * parallel.c - the engine's one threading model: OpenMP, shared with OpenBLAS's OpenMP
 * build, so two thread pools never spin against each other. Small work stays on the
 * calling thread; large loops are split into contiguous ranges, one per thread
 * (nl_parallel_for), and work made of independent pieces that need buffers of their own
 * runs as tasks on a fixed number of threads (nl_parallel_tasks). BLAS called inside a
 * parallel region runs single-threaded (OpenBLAS checks omp_in_parallel()).
 */
#include "function.h"
#ifdef _OPENMP
#include <omp.h>
#endif

enum { MIN_WORK_PER_THREAD = 1 << 15 };

void nl_parallel_for(int64_t n, int64_t cost_per_item, nl_range_fn body, void *ctx) {
    if (n <= 0) return;
#ifdef _OPENMP
    int64_t work;   /* n * cost, saturated */
    if (__builtin_mul_overflow(n, cost_per_item > 0 ? cost_per_item : 1, &work)) work = INT64_MAX;
    int threads = omp_get_max_threads();
    if (threads > 1 && work >= 2 * MIN_WORK_PER_THREAD && !omp_in_parallel()) {
        int64_t want = work / MIN_WORK_PER_THREAD;
        if (want < threads) threads = (int)want;
        if (threads > n) threads = (int)n;
#pragma omp parallel num_threads(threads)
        {
            int t = omp_get_thread_num(), nt = omp_get_num_threads();
            int64_t a = n * t / nt, b = n * (t + 1) / nt;
            if (b > a) body(a, b, ctx);
        }
        return;
    }
#endif
    (void)cost_per_item;
    body(0, n, ctx);
}

int nl_parallel_threads(int64_t work) {
#ifdef _OPENMP
    int threads = omp_get_max_threads();
    if (threads <= 1 || omp_in_parallel() || work < 2 * MIN_WORK_PER_THREAD) return 1;
    int64_t want = work / MIN_WORK_PER_THREAD;
    return want < threads ? (int)want : threads;
#else
    (void)work;
    return 1;
#endif
}

void nl_parallel_tasks(int64_t n_tasks, int threads, nl_task_fn body, void *ctx) {
    if (n_tasks <= 0) return;
    if (threads > n_tasks) threads = (int)n_tasks;
#ifdef _OPENMP
    if (threads > 1 && !omp_in_parallel()) {
#pragma omp parallel num_threads(threads)
        {
            /* task k runs as `thread` k mod threads even if the team came out smaller */
            const int t = omp_get_thread_num(), nt = omp_get_num_threads();
            for (int vt = t; vt < threads; vt += nt)
                for (int64_t k = vt; k < n_tasks; k += threads) body(k, vt, ctx);
        }
        return;
    }
#endif
    (void)threads;
    for (int64_t k = 0; k < n_tasks; k++) body(k, 0, ctx);
}
