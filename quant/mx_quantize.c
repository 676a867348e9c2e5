/* mx_quantize.c — float32 -> (codes, E8M0 scales) and back. The quantizer runs the same element
 * kernel as fake quantization and encodes its result; the dequantizer multiplies an exact
 * element value table by the block scale, so dequantize(quantize(x)) is bit-identical to
 * mx_fake_quant(x) (both compute the same exact product grid_value * 2^s). */
#include "quant/mx_internal.h"

/* static inline so that the tensor loop gets a copy specialised for n == 32. */
static inline void mx_qblock(const float *in, uint8_t *restrict codes, uint8_t *restrict scale,
                             size_t n, const mx_kparams *p, int nearest) {
    float buf[MX_BLOCK_SIZE];
    int e = mx_scale_byte(mx_block_load(in, buf, n), p->emax);
    *scale = (uint8_t)e;
    if (e == MX_SCALE_NAN) {
        for (size_t i = 0; i < n; i++)
            codes[i] = 0;
        return;
    }
    /* Codes need the element value P = Q(V / 2^s), so this runs the definition's route
     * (exactness of the product with 2^-s: see mx_fake_quant.c). */
    const float inv = mx_pow2f(127 - e);
    if (nearest) /* one loop per mode: a test inside would stop vectorization */
        for (size_t i = 0; i < n; i++) {
            uint32_t sign;
            float m = mx_round(buf[i] * inv, p->c_min, p->max_normal, p, 1, &sign);
            codes[i] = (uint8_t)mx_encode(m, sign, p);
        }
    else
        for (size_t i = 0; i < n; i++) {
            uint32_t sign;
            float m = mx_round(buf[i] * inv, p->c_min, p->max_normal, p, 0, &sign);
            codes[i] = (uint8_t)mx_encode(m, sign, p);
        }
}

void mx_quantize_block(const float *in, uint8_t *restrict codes, uint8_t *restrict scale, size_t n,
                       const mx_kparams *p, mx_rounding r) {
    mx_qblock(in, codes, scale, n, p, r == MX_ROUND_NEAREST);
}

void mx_dequantize_block(const uint8_t *restrict codes, uint8_t scale, float *restrict out,
                         size_t n, const float *restrict table) {
    if (scale == MX_SCALE_NAN) {
        for (size_t i = 0; i < n; i++)
            out[i] = NAN;
        return;
    }
    const float x = mx_pow2f((int)scale - 127);
    for (size_t i = 0; i < n; i++)
        out[i] = table[codes[i]] * x;
}

/* Blocks [b0, b1) of the rows x cols tensor (nb blocks per row). */
static void mx_q_range(const float *in, uint8_t *codes, uint8_t *scales, size_t cols, size_t nb,
                       size_t b0, size_t b1, const mx_kparams *p, int nearest) {
    size_t row = b0 / nb, j = b0 % nb;
    for (size_t b = b0; b < b1; b++) {
        const size_t off = row * cols + j * MX_BLOCK_SIZE, n = cols - j * MX_BLOCK_SIZE;
        if (n >= MX_BLOCK_SIZE) /* constant trip count: fully unrolled vector code */
            mx_qblock(in + off, codes + off, scales + b, MX_BLOCK_SIZE, p, nearest);
        else
            mx_qblock(in + off, codes + off, scales + b, n, p, nearest);
        if (++j == nb) {
            j = 0;
            row++;
        }
    }
}

void mx_quantize(const float *in, uint8_t *codes, uint8_t *scales, size_t rows, size_t cols,
                 mx_format f, mx_rounding r) {
    const mx_fmt_info *fi = mx_info(f);
    const size_t nb = mx_num_blocks(cols), total = rows * nb;
    if (!fi || total == 0)
        return;
    mx_kparams p;
    mx_kparams_init(&p, fi);
    const int nearest = r == MX_ROUND_NEAREST;
#pragma omp parallel if (total >= MX_PARALLEL_MIN_BLOCKS)
    {
        size_t b0, b1;
        mx_thread_range(total, &b0, &b1);
        mx_q_range(in, codes, scales, cols, nb, b0, b1, &p, nearest);
    }
}

void mx_dequantize(const uint8_t *codes, const uint8_t *scales, float *out, size_t rows,
                   size_t cols, mx_format f) {
    if (!mx_info(f))
        return;
    const float *table = mx_code_table_of(f);
    const size_t nb = mx_num_blocks(cols), total = rows * nb;
#pragma omp parallel for schedule(static) if (total >= MX_PARALLEL_MIN_BLOCKS)
    for (size_t b = 0; b < total; b++) {
        const size_t row = b / nb, j = (b % nb) * MX_BLOCK_SIZE;
        const size_t off = row * cols + j, n = cols - j < MX_BLOCK_SIZE ? cols - j : MX_BLOCK_SIZE;
        mx_dequantize_block(codes + off, scales[b], out + off, n, table);
    }
}
