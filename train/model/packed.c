/* packed.c — the QLoRA base's packed storage: quantize once from float, dequantize rows on
 * demand. */
#include "train/model/packed.h"

#include "quant/mx.h"
#include "quant/nf4.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* MX elements dequantized per inner chunk: the size of a stack buffer of codes. */
#define PACKED_CHUNK 4096

static mx_format mx_of(qt_lora_base f) {
    switch (f) {
    case QT_LORA_BASE_MXINT4:
        return MX_INT4;
    case QT_LORA_BASE_MXFP4_E2M1:
        return MX_FP4_E2M1;
    case QT_LORA_BASE_MXINT8:
        return MX_INT8;
    case QT_LORA_BASE_MXFP8_E4M3:
        return MX_FP8_E4M3;
    default:
        return MX_FP32;
    }
}

static int init_nf4(qt_packed *p, const float *w, size_t n) {
    size_t nb = nf4_num_blocks(n);
    p->codes = malloc(nf4_packed_size(n));
    p->absmax = malloc(nb * sizeof *p->absmax);
    if (!p->codes || !p->absmax)
        return -1;
    nf4_quantize(w, n, p->codes, p->absmax);
    if (!p->double_quant)
        return 0;
    /* The codes were chosen with the exact absmax; dequantization uses the double-quantized one
     * (as QLoRA does). Only the 8-bit form stays in memory. */
    p->dq_codes = malloc(nb);
    p->dq_scales = malloc(nf4_dq_num_blocks(nb) * sizeof *p->dq_scales);
    if (!p->dq_codes || !p->dq_scales)
        return -1;
    if (nf4_dq_encode(p->absmax, nb, &p->dq_mean, p->dq_codes, p->dq_scales) != 0)
        return -1;
    free(p->absmax);
    p->absmax = NULL;
    return 0;
}

static int init_mx(qt_packed *p, const float *w, size_t n) {
    mx_format f = mx_of(p->format);
    size_t rows = (size_t)p->rows, cols = (size_t)p->cols;
    uint8_t *codes = malloc(n);
    p->codes = malloc(mx_packed_size(f, n));
    p->scales = malloc(rows * mx_num_blocks(cols));
    if (!codes || !p->codes || !p->scales) {
        free(codes);
        return -1;
    }
    mx_quantize(w, codes, p->scales, rows, cols, f, MX_ROUND_EVEN);
    mx_pack(codes, n, f, p->codes);
    free(codes);
    return 0;
}

int qt_packed_init(qt_packed *p, qt_lora_base f, bool double_quant, const float *w, int64_t rows,
                   int64_t cols, char *err, size_t errlen) {
    memset(p, 0, sizeof *p);
    p->format = f;
    p->double_quant = f == QT_LORA_BASE_NF4 && double_quant;
    p->rows = rows;
    p->cols = cols;
    /* Rows of 4-bit MX codes must start on a byte of the packed stream. NF4's blocks run over
     * the flattened matrix; its row ranges may start anywhere. */
    bool mx4 = f == QT_LORA_BASE_MXINT4 || f == QT_LORA_BASE_MXFP4_E2M1;
    if (rows < 1 || cols < 1 || (mx4 && cols % 2 != 0)) {
        snprintf(err, errlen, "a %lld x %lld weight cannot be kept in %s%s", (long long)rows,
                 (long long)cols, qt_lora_base_name(f), mx4 ? " (needs an even row length)" : "");
        return -1;
    }
    size_t n = (size_t)rows * (size_t)cols;
    int rc;
    if (f == QT_LORA_BASE_FP32) {
        rc = (p->f32 = malloc(n * sizeof *p->f32)) ? 0 : -1;
        if (rc == 0)
            memcpy(p->f32, w, n * sizeof *p->f32);
    } else {
        rc = f == QT_LORA_BASE_NF4 ? init_nf4(p, w, n) : init_mx(p, w, n);
    }
    if (rc != 0) {
        snprintf(err, errlen, "out of memory packing a %lld x %lld weight in %s", (long long)rows,
                 (long long)cols, qt_lora_base_name(f));
        qt_packed_free(p);
    }
    return rc;
}

void qt_packed_free(qt_packed *p) {
    if (!p)
        return;
    free(p->codes);
    free(p->scales);
    free(p->absmax);
    free(p->dq_codes);
    free(p->dq_scales);
    free(p->f32);
    memset(p, 0, sizeof *p);
}

/* NF4 elements [i0, i1). With double quantization the absmax values are decoded one group of
 * NF4_DQ_BLOCK blocks at a time (one DQ scale each) into a stack buffer, and the group's elements
 * dequantized through a view that starts at the group. */
static void dequant_nf4(const qt_packed *p, size_t i0, size_t i1, float *out) {
    if (!p->double_quant) {
        nf4_dequantize_range(p->codes, p->absmax, i0, i1, out);
        return;
    }
    const size_t group = (size_t)NF4_DQ_BLOCK * NF4_BLOCK; /* elements per DQ scale */
    size_t nb = nf4_num_blocks((size_t)p->rows * (size_t)p->cols);
    float am[NF4_DQ_BLOCK];
    for (size_t g = i0 / group; g * group < i1; g++) {
        size_t b0 = g * NF4_DQ_BLOCK, nbg = nb - b0 < NF4_DQ_BLOCK ? nb - b0 : NF4_DQ_BLOCK;
        nf4_dq_decode(p->dq_mean, p->dq_codes + b0, p->dq_scales + g, nbg, am);
        size_t s = i0 > g * group ? i0 : g * group, e = i1 < (g + 1) * group ? i1 : (g + 1) * group;
        nf4_dequantize_range(p->codes + g * group / 2, am, s - g * group, e - g * group,
                             out + (s - i0));
    }
}

static void dequant_mx(const qt_packed *p, int64_t r0, int64_t r1, float *out) {
    mx_format f = mx_of(p->format);
    size_t cols = (size_t)p->cols, nb = mx_num_blocks(cols), bits = (size_t)mx_format_bits(f);
    uint8_t codes[PACKED_CHUNK];
    for (int64_t r = r0; r < r1; r++)
        for (size_t c = 0; c < cols; c += PACKED_CHUNK) {
            size_t len = cols - c < PACKED_CHUNK ? cols - c : PACKED_CHUNK;
            size_t first = (size_t)r * cols + c; /* even (4-bit cols are): a whole byte */
            mx_unpack(p->codes + first * bits / 8, len, f, codes);
            mx_dequantize(codes, p->scales + (size_t)r * nb + c / MX_BLOCK_SIZE,
                          out + (size_t)(r - r0) * cols + c, 1, len, f);
        }
}

void qt_packed_dequant_rows(const void *ctx, int64_t r0, int64_t r1, float *out) {
    const qt_packed *p = ctx;
    size_t cols = (size_t)p->cols;
    if (p->format == QT_LORA_BASE_FP32)
        memcpy(out, p->f32 + (size_t)r0 * cols, (size_t)(r1 - r0) * cols * sizeof *out);
    else if (p->format == QT_LORA_BASE_NF4)
        dequant_nf4(p, (size_t)r0 * cols, (size_t)r1 * cols, out);
    else
        dequant_mx(p, r0, r1, out);
}

size_t qt_packed_bytes(const qt_packed *p) {
    size_t n = (size_t)p->rows * (size_t)p->cols;
    switch (p->format) {
    case QT_LORA_BASE_FP32:
        return n * sizeof(float);
    case QT_LORA_BASE_NF4: {
        size_t nb = nf4_num_blocks(n);
        return nf4_packed_size(n) +
               (p->double_quant ? nb + nf4_dq_num_blocks(nb) * sizeof(float) + sizeof(float)
                                : nb * sizeof(float));
    }
    default:
        return mx_packed_size(mx_of(p->format), n) +
               (size_t)p->rows * mx_num_blocks((size_t)p->cols);
    }
}

static uint64_t fnv(uint64_t h, const void *data, size_t n) {
    const unsigned char *b = data;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

uint64_t qt_packed_hash(const qt_packed *p, uint64_t h) {
    size_t n = (size_t)p->rows * (size_t)p->cols;
    int64_t head[3] = {(int64_t)p->format, p->rows, p->cols};
    h = fnv(h, head, sizeof head);
    switch (p->format) {
    case QT_LORA_BASE_FP32:
        return fnv(h, p->f32, n * sizeof *p->f32);
    case QT_LORA_BASE_NF4: {
        size_t nb = nf4_num_blocks(n);
        h = fnv(h, p->codes, nf4_packed_size(n));
        if (!p->double_quant)
            return fnv(h, p->absmax, nb * sizeof *p->absmax);
        h = fnv(h, &p->dq_mean, sizeof p->dq_mean);
        h = fnv(h, p->dq_codes, nb);
        return fnv(h, p->dq_scales, nf4_dq_num_blocks(nb) * sizeof *p->dq_scales);
    }
    default:
        h = fnv(h, p->codes, mx_packed_size(mx_of(p->format), n));
        return fnv(h, p->scales, (size_t)p->rows * mx_num_blocks((size_t)p->cols));
    }
}
