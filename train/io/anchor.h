/* anchor.h — anchor checkpoints: the weight of every quantized linear layer stored as packed MX
 * element codes plus E8M0 scales in one anchor format (mxint8, mxfp8_e4m3, mxfp8_e5m2), every
 * other parameter as float32; and files made from an anchor by Slice-and-Scale to a lower format
 * ("converted" files: same layout, plus the root attribute source_format); and post-training
 * quantized files made by qat-ptq (kind "ptq": same layout in any MX format, plus the root
 * attributes ptq_method, ptq_alpha and ptq_calib_batches).
 *
 * File layout (a qat checkpoint of kind "anchor", see ckpt.h and docs/CHECKPOINTS.md):
 *   /                      attrs kind "anchor", step, config, model_hash, format ("mxint8"),
 *                          rounding ("even" | "nearest"), source_format (converted files only)
 *   /params/NAME           group of a quantized weight [rows, cols] = [out, in];
 *                          attrs format, shape (int64[2]), rounding
 *   /params/NAME/elements  uint8 [mx_packed_size(format, rows*cols)]: the codes of the row-major
 *                          tensor as one little-endian bit stream (mx_pack: 8-bit as is, 6-bit four
 *                          per three bytes, 4-bit two per byte, 2-bit four per byte)
 *   /params/NAME/scales    uint8 [rows, ceil(cols/32)]: E8M0 scale of each block of 32 along cols
 *   /params/OTHER          float32, as in a training checkpoint
 * /optim, /rng and /data are present but empty. Writes are atomic (qt_ckpt_write); reads verify
 * every checksum, including the attributes'.
 *
 * In memory the codes are unpacked (one per byte, right-aligned, as mx_quantize makes them).
 * Errors name the file and the dataset or attribute; err may be NULL when errlen is 0. */
#ifndef QAT_TRAIN_IO_ANCHOR_H
#define QAT_TRAIN_IO_ANCHOR_H

#include "quant/mx.h"
#include "train/io/ckpt.h"
#include "train/model/gpt.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct qt_anchor_tensor {
    char name[QT_CKPT_NAME_MAX]; /* parameter name, e.g. "h.0.attn.wq" */
    bool quantized;
    int ndim;         /* quantized: 2 */
    int64_t shape[4]; /* quantized: [rows, cols] */
    uint8_t *codes;   /* quantized: rows*cols codes, one per byte; owned */
    uint8_t *scales;  /* quantized: rows*mx_num_blocks(cols) E8M0 bytes; owned */
    float *data;      /* not quantized: the values; owned */
} qt_anchor_tensor;

typedef struct qt_anchor_ckpt {
    mx_format format;     /* of every quantized tensor */
    mx_format source;     /* MX_FP32 for an anchor (made from float weights); for a converted
                             file, the anchor format it was sliced from */
    mx_rounding rounding; /* used to quantize (and to Slice-and-Scale) it */
    /* PTQ files (kind "ptq"): the method ("rtn", "gptq", "smoothquant+rtn", ...), "" for anchors
     * and converted files. A PTQ file holds weights quantized for its own format only. */
    char ptq_method[32];
    double ptq_alpha;          /* SmoothQuant migration strength (0 when not smoothed) */
    int64_t ptq_calib_batches; /* calibration batches (0 for rtn) */
    int64_t step;
    char *config_text; /* the run's resolved INI; owned */
    uint64_t model_hash;
    qt_anchor_tensor *t; /* model order (qt_anchor_from_model) or sorted by name (read) */
    size_t n;
} qt_anchor_ckpt;

/* 1 for mxint8, mxfp8_e4m3, mxfp8_e5m2: the formats an anchor can be made in. */
bool qt_anchor_format_ok(mx_format f);

/* Quantize model m into an anchor in format f with rounding r: every parameter for which
 * qt_model_param_quantized(m, p, head) holds becomes codes + scales (mx_quantize, blocks along
 * the last axis), every other one a float32 copy. config_text (NULL: "") is copied. Returns 0,
 * or -1 (f not an anchor format, out of memory) with *a empty. */
int qt_anchor_from_model(qt_anchor_ckpt *a, const qt_model *m, bool head, mx_format f,
                         mx_rounding r, const char *config_text, int64_t step, uint64_t model_hash,
                         char *err, size_t errlen);

/* The same quantization in any MX format f (RTN: mx_quantize of each quantized weight): not an
 * anchor unless f is an anchor format; callers mark what it is (e.g. ptq_method "rtn"). */
int qt_quantized_from_model(qt_anchor_ckpt *a, const qt_model *m, bool head, mx_format f,
                            mx_rounding r, const char *config_text, int64_t step,
                            uint64_t model_hash, char *err, size_t errlen);

/* An anchor in format f made from a training checkpoint ck read from path: the model is rebuilt
 * from ck's stored config, its float parameters loaded, and quantized with the stored
 * quant.rounding and quant.quantize_head (as the end of that run would have). Returns 0, or -1
 * with *a empty and a message naming path (f not an anchor format, config that does not parse,
 * model_hash or tensors that do not match it, out of memory). */
int qt_anchor_from_train(qt_anchor_ckpt *a, const qt_ckpt *ck, const char *path, mx_format f,
                         char *err, size_t errlen);

/* Write atomically to path. Returns 0 or -1 with a message naming path. */
int qt_anchor_write(const char *path, const qt_anchor_ckpt *a, char *err, size_t errlen);

/* Build *a from a checkpoint already read from path (ck is only read; everything is copied).
 * Accepts kinds anchor and ptq. Fails (-1, *a empty) when ck is a training checkpoint ("PATH: is a
 * 'train' checkpoint, not an anchor"), an attribute is missing or invalid, a tensor's parts
 * disagree with its shape, or a uint8 dataset is not a part of a quantized tensor. */
int qt_anchor_from_ckpt(qt_anchor_ckpt *a, const qt_ckpt *ck, const char *path, char *err,
                        size_t errlen);
/* qt_ckpt_read + qt_anchor_from_ckpt. */
int qt_anchor_read(const char *path, qt_anchor_ckpt *a, char *err, size_t errlen);
void qt_anchor_free(qt_anchor_ckpt *a); /* releases everything; leaves *a zeroed; NULL ok */

/* Whether a can be converted to dst by Slice-and-Scale: dst an MX format with at most the bits of
 * a->format, a pair mx_sns_supported accepts, and a an anchor (a converted or PTQ file reaches
 * only its own format). Returns 0, or -1 with the reason in why ("fp32 (32 bits) is above mxint8 (8
 * bits): Slice-and-Scale only goes down"). */
int qt_anchor_check_convert(const qt_anchor_ckpt *a, mx_format dst, char *why, size_t whylen);
/* *out = Slice-and-Scale of every quantized tensor of src to dst (rounding src->rounding),
 * float tensors copied; out->source = src->format (src->source if dst == src->format).
 * Returns 0, or -1 (refused by qt_anchor_check_convert, or out of memory) with *out empty. */
int qt_anchor_convert(const qt_anchor_ckpt *src, mx_format dst, qt_anchor_ckpt *out, char *err,
                      size_t errlen);

/* Set m's parameters from a: quantized tensors become dequantize(SnS(a -> f)) — f == a->format
 * or MX_FP32 dequantize a's own codes — and float tensors are copied. Every parameter of m must
 * be in a with its shape and vice versa. Returns 0, or -1 (mismatch, f unreachable, out of
 * memory; m may be partly written) with a message naming `path` and the tensor. */
int qt_anchor_load_model(const qt_anchor_ckpt *a, qt_model *m, mx_format f, const char *path,
                         char *err, size_t errlen);
/* Whether a stores m's output projection (lm_head, or wte when tied) quantized: the qt_quant
 * head flag that evaluates it as it was trained. */
bool qt_anchor_head_quantized(const qt_anchor_ckpt *a, const qt_model *m);
/* Number of quantized tensors, and the bytes their packed codes and scales take. */
size_t qt_anchor_quantized_count(const qt_anchor_ckpt *a, size_t *packed_bytes);

/* Set m's parameters from the float32 /params of a training checkpoint read from path. Every
 * parameter must be present with its shape. Returns 0 or -1 with a message naming the tensor. */
int qt_model_load_params(qt_model *m, const qt_ckpt *ck, const char *path, char *err,
                         size_t errlen);

#endif
