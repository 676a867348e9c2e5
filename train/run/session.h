/* session.h — internal to train/run: everything one training run holds, and its checkpointing. */
#ifndef QAT_TRAIN_RUN_SESSION_H
#define QAT_TRAIN_RUN_SESSION_H

#include "autograd/ag.h"
#include "data/data.h"
#include "optim/opt.h"
#include "train/io/config.h"
#include "train/model/gpt.h"
#include "train/run/format.h"
#include "train/run/task.h"
#include "train/run/train.h"

#include <stdio.h>

typedef struct qt_session {
    qt_config cfg;
    char *config_text; /* resolved INI, stored in every checkpoint */
    data_corpus corpus;
    data_split split;
    qt_model *model;
    opt_param *oparams; /* one per trainable parameter (QLoRA: adapters, maybe norms) */
    size_t n_oparams;
    opt_optimizer *opt;
    data_sampler *sampler; /* pretrain only */
    qt_task task;          /* sft and grpo only */
    struct qt_grpo *grpo;  /* grpo only (grpo.c) */
    data_rng rng[DATA_STREAM_COUNT];
    qt_format_sampler formats;
    ag_tape *tape;
    int32_t *x, *y; /* (B,T) batch buffers */
    int B, T;
    int64_t step; /* completed steps */
    char ckpt_dir[QT_PATH_MAX + 16];
    char last_ckpt[QT_PATH_MAX + 48];
} qt_session;

/* Build a run from the options: config, corpus, model, optimizer, sampler, and (if asked) the
 * state of a checkpoint. Returns QT_EXIT_OK or an exit code after printing why to stderr. */
int qt_session_open(qt_session *s, const qt_train_opts *o);
void qt_session_close(qt_session *s);

/* [run] init_from (init_from.c): overwrite the freshly initialised parameters with those of the
 * checkpoint it names (a training checkpoint's float weights, or an anchor's or PTQ file's
 * dequantized ones), whose stored [model] must equal the config's. "" does nothing. Returns
 * QT_EXIT_OK or QT_EXIT_CKPT with a message naming the file (and the differing keys). */
int qt_session_init_from(qt_session *s, char *err, size_t errlen);

/* Write out_dir/ckpt/step_NNNNNNN.h5 for the current step and prune old ones. Refuses (exit code
 * QT_EXIT_NUMERIC) to write parameters that are not finite. Returns QT_EXIT_OK or an exit code. */
int qt_session_save(qt_session *s);

/* End of a run with [quant] mode != none (evaluate_end.c): write out_dir/anchor.h5 in
 * quant.anchor from the current weights, read it back, and print to stderr the validation loss
 * at fp32 and every MX format computed from it by Slice-and-Scale. Returns QT_EXIT_OK or an exit
 * code (QT_EXIT_CKPT: the anchor could not be written or read back) after printing why. */
int qt_session_final_anchor(qt_session *s);

typedef struct qt_step_result {
    double loss, grad_norm, seconds;
    mx_format format; /* the step's fake-quantization format (MX_FP32 = none) */
} qt_step_result;

/* One optimizer step at learning rate lr: next batch, forward, backward, clip, update; s->step
 * advances. Returns QT_EXIT_OK, or QT_EXIT_NUMERIC (non-finite loss or gradient: nothing was
 * updated) or QT_EXIT_INTERNAL (arena failure), after printing why. debug_nan_at: test hook. */
int qt_session_step(qt_session *s, double lr, int64_t debug_nan_at, qt_step_result *r);

/* Mean validation loss (tape not recording) with the model fake-quantized in format f (MX_FP32 =
 * none): over cfg.run.eval_batches fixed batches of the corpus (pretrain), or over the answer
 * tokens of the held-out problems (sft, grpo). NAN on an arena failure (message printed). */
double qt_session_eval(qt_session *s, mx_format f);
/* sft, grpo: held-out exact-match accuracy by greedy decoding in format f. NAN on failure. */
double qt_session_accuracy(qt_session *s, mx_format f);

#endif
