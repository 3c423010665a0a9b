/*
 * pooling_ext_plan.h - what pooling_ext.c's global_average_pooling, sum_pooling and
 * unpooling share with their CUDA twins (cuda/norm_ext.cu, which reads f->state): the
 * setup's state and sum pooling's window of an output (NL_HD: host and device under nvcc,
 * plain C elsewhere). Pooled axes are right-aligned in NL_POOL_SD slots (pool_geometry.h).
 */
#ifndef NNLUA_POOLING_EXT_PLAN_H
#define NNLUA_POOLING_EXT_PLAN_H
#include "../src/function.h"
#include "elementwise_math.h"   /* NL_HD */
#include "pool_geometry.h"      /* NL_POOL_SD */
#include <stdint.h>

/* global_average_pooling: x viewed as (maps = N*C, inner) */
typedef struct gap_state { int64_t maps, inner; } gap_state;

/* sum_pooling: x (maps, in[0], in[1], in[2]) -> y (maps, out[0], out[1], out[2]) */
typedef struct sp_state {
    int64_t maps;
    int64_t in[NL_POOL_SD], out[NL_POOL_SD], k[NL_POOL_SD], stride[NL_POOL_SD], pad[NL_POOL_SD];
    int64_t in_size, out_size;
} sp_state;

/* The window of output o clipped to the input: [lo, hi) per axis. */
NL_HD void sp_window(const sp_state *st, const int64_t *o, int64_t *lo, int64_t *hi) {
    for (int a = 0; a < NL_POOL_SD; a++) {
        int64_t s = o[a] * st->stride[a] - st->pad[a];
        int64_t e = s + st->k[a];
        if (e > st->in[a] + st->pad[a]) e = st->in[a] + st->pad[a];
        if (s < 0) s = 0;
        if (e > st->in[a]) e = st->in[a];
        lo[a] = s;
        hi[a] = e > s ? e : s;
    }
}

/* unpooling: x (maps, in[0], in[1], in[2]) -> y (maps, in[0]*k[0], in[1]*k[1], in[2]*k[2]) */
typedef struct up_state {
    int64_t maps, in[NL_POOL_SD], k[NL_POOL_SD], in_size, out_size;
} up_state;

#endif
