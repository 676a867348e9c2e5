/* format.h — which MX format a training step runs in: none (fp32), one fixed format, or one drawn
 * at random per step (MF-QAT) from the configured set and weights, with its own RNG stream. */
#ifndef QAT_TRAIN_RUN_FORMAT_H
#define QAT_TRAIN_RUN_FORMAT_H

#include "data/data.h"
#include "quant/mx.h"
#include "train/io/config.h"
#include "train/model/gpt.h"

typedef struct qt_format_sampler {
    qt_quant_mode mode;
    qt_format_set set;
    int64_t start_step;
    qt_quant base; /* every option of cfg [quant] except the format */
} qt_format_sampler;

/* From a validated config. Returns 0, or -1 with a message (bad [quant] lists). */
int qt_format_sampler_init(qt_format_sampler *fs, const qt_config *c, char *err, size_t errlen);
/* Format of 0-based step `step`. Draws from rng only in multi mode at or after start_step, so the
 * stream's position (saved in checkpoints) depends on the step count alone. */
mx_format qt_format_draw(const qt_format_sampler *fs, data_rng *rng, int64_t step);
/* The model quantization for format f (MX_FP32 = off). */
qt_quant qt_format_quant(const qt_format_sampler *fs, mx_format f);
/* The format validation loss is tracked in during training: the one format of single mode,
 * fp32 otherwise (under MF-QAT every format is evaluated at the end of the run). */
mx_format qt_format_eval(const qt_format_sampler *fs);

#endif
