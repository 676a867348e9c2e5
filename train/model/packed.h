/* packed.h — a frozen weight matrix kept packed in memory (the QLoRA base): NF4 (optionally with
 * double-quantized block absmax values), an MX format (bit-packed codes + E8M0 scales), or plain
 * float32 for LoRA on an unquantized base. Rows are dequantized on demand, a few at a time, by
 * ag_frozen_linear through qt_packed_dequant_rows; no float copy of the whole matrix exists. */
#ifndef QAT_TRAIN_MODEL_PACKED_H
#define QAT_TRAIN_MODEL_PACKED_H

#include "train/io/config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct qt_packed {
    qt_lora_base format;
    bool double_quant; /* NF4 only */
    int64_t rows, cols;
    uint8_t *codes;   /* NF4: two codes per byte; MX: mx_pack'd stream; fp32: NULL */
    uint8_t *scales;  /* MX: E8M0 [rows, cols/32] */
    float *absmax;    /* NF4 without double quantization: one per 64-element block */
    int8_t *dq_codes; /* NF4 with double quantization: absmax = dq_mean + code · dq_scale */
    float *dq_scales; /* one per 256 blocks */
    float dq_mean;
    float *f32; /* fp32 */
} qt_packed;

/* Quantize w [rows, cols] (float, row-major) into p, which owns everything it allocates.
 * NF4 blocks run over the flattened matrix; MX blocks along each row (a short last block when
 * cols % 32 != 0; 4-bit MX needs an even cols). Returns 0, or -1 with a message (bad shape, out
 * of memory). */
int qt_packed_init(qt_packed *p, qt_lora_base f, bool double_quant, const float *w, int64_t rows,
                   int64_t cols, char *err, size_t errlen);
void qt_packed_free(qt_packed *p); /* leaves *p zeroed; NULL ok */

/* Rows [r0, r1) as floats, row-major into out [(r1 - r0) · cols]. Safe to call concurrently for
 * disjoint ranges; never allocates (an ag_frozen callback: ctx is the qt_packed). */
void qt_packed_dequant_rows(const void *ctx, int64_t r0, int64_t r1, float *out);

/* Bytes held in memory (codes, scales, absmax or their double quantization). */
size_t qt_packed_bytes(const qt_packed *p);
/* FNV-1a of the format, shape and every stored byte, continuing from h: the base fingerprint
 * QLoRA checkpoints record. */
uint64_t qt_packed_hash(const qt_packed *p, uint64_t h);

#endif
