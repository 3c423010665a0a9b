/*
 * conv_batchvec.h - direct 2-d convolution for small maps and few channels (the tutorial's
 * 8x8 digits), with the batch as the vector axis. convolution.c lowers to GEMM through
 * im2col; for maps of a few dozen pixels and a few channels the column gathers and the
 * col2im sums cost more than the products (M = 8 rows of OpenBLAS), so these problems are
 * done directly instead: x (N, C, H, W) is transposed to (C, H, W, NP), NP = N rounded up
 * to 8 (zeros after N), and every tap of the kernel becomes a run of NP multiply-adds that
 * vectorize without gathers. convolution.c decides which problems go here (group 1, one or
 * two spatial axes, a batch of 8 or more, C*KH*KW*OC and the maps small).
 */
#ifndef NNLUA_CONV_BATCHVEC_H
#define NNLUA_CONV_BATCHVEC_H
#include <stdbool.h>
#include <stdint.h>

typedef struct nl_cbv_geom {
    int64_t n, np;          /* samples; np = n rounded up to a multiple of 8 */
    int64_t c, oc;          /* input and output channels */
    int64_t in[2], out[2];  /* spatial sizes (H, W) */
    int64_t k[2], stride[2], pad[2], dil[2];
    /* Tap tables (nl_cbv_tables), spatial positions flattened (y * W + x), taps ki * KW + kj;
     * only taps that read inside the map are listed:
     *   out_* : for output position p, entries out_start[p] .. out_start[p+1]-1 give the
     *           input position read (out_in) by tap (out_tap)
     *   in_*  : for input position q, the output positions (in_out) whose tap (in_tap) reads q
     *   tap_* : for tap k, the (output, input) position pairs it joins (tap_out, tap_in) */
    int32_t *out_start, *out_in, *out_tap;
    int32_t *in_start, *in_out, *in_tap;
    int32_t *tap_start, *tap_out, *tap_in;
} nl_cbv_geom;

/* Builds g's tap tables from its sizes (0, or -1 with an error); nl_cbv_free frees them. */
int nl_cbv_tables(nl_cbv_geom *g);
void nl_cbv_free(nl_cbv_geom *g);

/* Floats of work space the calls below need. */
int64_t nl_cbv_work(const nl_cbv_geom *g);

/* x (N, C, H, W), w (OC, C, KH, KW), b (OC) or NULL -> y (N, OC, OH, OW) */
void nl_cbv_forward(const nl_cbv_geom *g, const float *x, const float *w, const float *b, float *y,
                    float *work);

/* dy (N, OC, OH, OW) -> dx (N, C, H, W) when dx != NULL (reads w), dw (OC, C, KH, KW) when
 * dw != NULL (reads x); each overwritten, or added to when its accum flag is set. */
void nl_cbv_backward(const nl_cbv_geom *g, const float *x, const float *w, const float *dy, float *dx,
                     float *dw, bool accum_x, bool accum_w, float *work);

#endif
