/* ptq.h — post-training quantization of a trained model (qat-ptq): RTN, GPTQ and SmoothQuant
 * (combined with either) from quant/ptq.h, applied to a training checkpoint's float weights,
 * giving a file of kind "ptq" (the anchor layout in any MX format, see train/io/anchor.h) that
 * qat-eval evaluates at its own format.
 *
 * Calibration uses calib_batches batches of windows of the *training* split (data_val_batch over
 * split.train at evenly spaced batch indices: fixed, no RNG), never the validation batches the
 * result is judged on. With activation quantization on (the stored quant.quantize, or an override),
 * the calibration forward passes quantize activations in the target format, as evaluation will.
 *
 * - SmoothQuant: one fp32 pass records the per-channel |x| maximum of every linear input; the
 *   inputs that follow a norm (q,k,v after ln1; up after ln2) are smoothed by
 *   s_j = max|X_j|^α / max|W_j|^(1−α) (W over the rows of all layers reading that input), s
 *   folded into the norm's weight (and bias) and multiplied into the weight columns. wo and down
 *   read the attention output and the GELU output, which have no norm to fold into: unsmoothed.
 * - GPTQ: "true sequential" within each block — groups {wq,wk,wv}, {wo}, {up}, {down} (and the
 *   output projection when quantize_head) are quantized in forward order, each from the Hessian
 *   of its input measured with every earlier group already quantized.
 * - RTN: MX round-to-nearest-even (or the stored quant.rounding) of each weight on its own.
 * CRoPE models (complex projections) take RTN only: GPTQ's Hessian and SmoothQuant's fold are
 * written for real linear layers. */
#ifndef QAT_TRAIN_RUN_PTQ_H
#define QAT_TRAIN_RUN_PTQ_H

#include "quant/mx.h"
#include "train/io/anchor.h"
#include "train/io/ckpt.h"
#include "train/model/gpt.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct qt_ptq_opts {
    const char *method;    /* rtn | gptq | smoothquant+rtn | smoothquant+gptq */
    mx_format format;      /* any MX format */
    int64_t calib_batches; /* calibration batches of the stored batch_size x seq_len (> 0) */
    double alpha;          /* SmoothQuant migration strength in [0, 1] */
    double damp;           /* GPTQ dampening, a fraction of the mean Hessian diagonal (> 0) */
    int quantize;          /* -1: the stored quant.quantize; else a qt_quantize_what */
    const char *corpus;    /* NULL: the stored data.corpus */
    FILE *log;             /* progress lines (NULL: none) */
} qt_ptq_opts;

/* Splits a method name. Returns 0, or -1 when it is not one of the four. */
int qt_ptq_method_parse(const char *method, bool *smooth, bool *gptq);

/* Quantize the float weights of training checkpoint ck (read from path) by o into *out (kind
 * ptq: quantized tensors in o->format, every other parameter float32 — norms changed by
 * SmoothQuant included). Returns QT_EXIT_OK, or with *out empty and a message: QT_EXIT_USAGE
 * (bad options), QT_EXIT_CKPT (not a training checkpoint, config or tensors that do not fit),
 * QT_EXIT_DATA (corpus), QT_EXIT_NUMERIC (GPTQ on non-finite weights), QT_EXIT_INTERNAL. */
int qt_ptq_run(const qt_ckpt *ck, const char *path, const qt_ptq_opts *o, qt_anchor_ckpt *out,
               char *err, size_t errlen);

/* SmoothQuant's fold for block `block` of m (what qt_ptq_run does per block, exposed for tests):
 * attn_amax [C] and mlp_amax [C] are the per-channel |x| maxima of the ln1 and ln2 outputs; the
 * smoothing scales divide the norm's weight and bias and multiply the columns of wq, wk, wv (resp.
 * up). In exact arithmetic the model computes the same function. Returns 0, or -1 (bad block or
 * alpha, out of memory). */
int qt_ptq_smooth_block(qt_model *m, int block, const float *attn_amax, const float *mlp_amax,
                        double alpha);

#endif
