/* mx_fake_quant.c — quantize-dequantize in float32 without materialising codes: the hot kernel
 * of quantization-aware training (every linear layer's input and weight, every step).
 *
 * Per block: one pass copies the block and finds max |bit pattern| (integer max: NaN/Inf and
 * amax in one go), then one pass rounds every element (mx_round). Both passes are branch-free
 * over the 32 elements and vectorize; the rounding mode and full-block length are compile-time
 * constants of each loop. For all but extreme blocks the rounding runs on the grid scaled by 2^s
 * (see mx_round), which equals P * 2^s with P = Q(V / 2^s) exactly and needs no multiply.
 *
 * The extreme blocks take the definition's route, V * 2^-s then P * 2^s. Why multiplying by 2^-s
 * instead of ldexpf(v, -s) is bit-identical: a product with a power of two is exact unless the
 * result is below 2^-126 (float subnormal range), and such a scaled value is far below half the
 * smallest grid step of any format (2^-17 for E5M2), so it rounds to zero either way. P * 2^s is
 * exact: P's lowest set bit is >= 2^(emin - mbits) and s >= -127, so the product stays on the
 * float32 grid (>= 2^-143), and P < 2^(emax+1) keeps it below 2^128. */
#include "quant/mx_internal.h"

#include <string.h>

/* One block of n <= 32 values. Each rounding mode has its own element loop (a runtime test
 * inside the loop would stop vectorization); the full-block call sites pass n = 32. */
static inline void mx_fq_block(const float *in, float *out, size_t n, const mx_kparams *p,
                               int nearest) {
    float buf[MX_BLOCK_SIZE];
    const int e = mx_scale_byte(mx_block_load(in, buf, n), p->emax);
    if (e == MX_SCALE_NAN) {
        for (size_t i = 0; i < n; i++)
            out[i] = NAN;
        return;
    }
    const int s = e - 127;
    /* Common case: round on the grid scaled by 2^s, in place. Blocks with amax below ~2^-100 or
     * above ~2^90 take the definition's route: scale to the element grid, round, scale back. */
    const int scaled = s < p->s_lo || s > p->s_hi;
    float c_lo = p->c_min, sat = p->max_normal;
    if (scaled) {
        const float inv = mx_pow2f(-s);
        for (size_t i = 0; i < n; i++)
            buf[i] *= inv;
    } else { /* s >= s_lo >= -125: 2^s and c_min * 2^s are normal, built from bits */
        c_lo = mx_u2f((uint32_t)(p->c_min_exp + s + 127) << 23);
        sat = p->max_normal * mx_u2f((uint32_t)(s + 127) << 23);
    }
    float *restrict o = out; /* buf holds the input now, so out aliases nothing we read */
    if (nearest)
        for (size_t i = 0; i < n; i++) {
            uint32_t sign;
            float m = mx_round(buf[i], c_lo, sat, p, 1, &sign);
            o[i] = mx_u2f(mx_f2u(m) | sign);
        }
    else
        for (size_t i = 0; i < n; i++) {
            uint32_t sign;
            float m = mx_round(buf[i], c_lo, sat, p, 0, &sign);
            o[i] = mx_u2f(mx_f2u(m) | sign);
        }
    if (scaled) {
        const float x = mx_pow2f(s);
        for (size_t i = 0; i < n; i++)
            o[i] *= x;
    }
}

/* Blocks [b0, b1) of the rows x cols tensor (nb blocks per row). */
static void mx_fq_range(const float *in, float *out, size_t cols, size_t nb, size_t b0, size_t b1,
                        const mx_kparams *p, int nearest) {
    size_t row = b0 / nb, j = b0 % nb;
    for (size_t b = b0; b < b1; b++) {
        const size_t off = row * cols + j * MX_BLOCK_SIZE, n = cols - j * MX_BLOCK_SIZE;
        if (n >= MX_BLOCK_SIZE) /* constant trip count: fully unrolled vector code */
            mx_fq_block(in + off, out + off, MX_BLOCK_SIZE, p, nearest);
        else
            mx_fq_block(in + off, out + off, n, p, nearest);
        if (++j == nb) {
            j = 0;
            row++;
        }
    }
}

void mx_fake_quant(const float *in, float *out, size_t rows, size_t cols, mx_format f,
                   mx_rounding r) {
    const mx_fmt_info *fi = mx_info(f);
    if (!fi) {
        /* fp32 is the identity; unknown formats too (documented in mx.h as no quantization) */
        if (in != out && rows * cols > 0)
            memmove(out, in, rows * cols * sizeof *out);
        return;
    }
    const size_t nb = mx_num_blocks(cols), total = rows * nb;
    if (total == 0)
        return;
    mx_kparams p;
    mx_kparams_init(&p, fi);
    const int nearest = r == MX_ROUND_NEAREST;
#pragma omp parallel if (total >= MX_PARALLEL_MIN_BLOCKS)
    {
        size_t b0, b1;
        mx_thread_range(total, &b0, &b1);
        mx_fq_range(in, out, cols, nb, b0, b1, &p, nearest);
    }
}
