/* evaluate.h — validation loss of a model at MX formats: from an anchor by Slice-and-Scale, or by
 * direct quantization of float weights; the per-format table of qat-eval and of the end of a
 * qat-train run.
 *
 * Every row is computed on the same fixed validation batches (data_val_batch 0..n-1 of the
 * split the stored config defines), with the tape not recording. A model of run.mode sft or grpo
 * is evaluated on its task's held-out problems instead: the loss of their answer tokens, and the
 * exact-match accuracy of greedy completions (train/run/task.h). */
#ifndef QAT_TRAIN_RUN_EVALUATE_H
#define QAT_TRAIN_RUN_EVALUATE_H

#include "autograd/ag.h"
#include "data/data.h"
#include "quant/mx.h"
#include "train/io/anchor.h"
#include "train/io/config.h"
#include "train/model/gpt.h"
#include "train/run/task.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct qt_evaluator {
    qt_config cfg;      /* parsed from the stored config */
    data_corpus corpus; /* loaded here unless the caller lent validation bytes */
    data_split split;
    const uint8_t *val; /* the validation bytes evaluated: split.val, or the caller's */
    size_t n_val;
    qt_model *model; /* built from cfg; its weights are what the rows set */
    ag_tape *tape;
    int32_t *x, *y; /* (B,T) */
    int B, T;
    size_t n_batches;
    qt_task task; /* sft, grpo: the held-out problems (task.held_out NULL otherwise) */
} qt_evaluator;

typedef struct qt_eval_opts {
    const char *config_text; /* INI the model and data come from (a checkpoint's stored config) */
    const char *origin;      /* names config_text in messages, e.g. the checkpoint path */
    const char *corpus;      /* NULL: the config's data.corpus */
    const uint8_t *val;      /* non-NULL: evaluate these bytes (borrowed) instead of loading */
    size_t n_val;
    int64_t batches; /* <= 0: the config's run.eval_batches; capped at the distinct batches */
} qt_eval_opts;

/* Returns QT_EXIT_OK, or with a message in err: QT_EXIT_CKPT (the stored config does not parse
 * or validate), QT_EXIT_DATA (corpus, split), QT_EXIT_INTERNAL (memory). Loading a corpus also
 * sets the OpenMP thread count from the config's run.threads, as qat-train does. */
int qt_evaluator_open(qt_evaluator *e, const qt_eval_opts *o, char *err, size_t errlen);
void qt_evaluator_close(qt_evaluator *e); /* zeroed evaluator and NULL are no-ops */

/* Mean loss over the batches with the model's current weights under quantization q. Returns 0,
 * or -1 with a message (arena failure). */
int qt_evaluator_loss(qt_evaluator *e, const qt_quant *q, double *loss, char *err, size_t errlen);

/* ---- rows ---- */

typedef struct qt_eval_row {
    mx_format format;
    double loss;       /* NAN when skipped */
    bool has_accuracy; /* a task model's row: accuracy is its held-out exact-match fraction */
    double accuracy;
    char note[160]; /* why it was skipped, else "" */
} qt_eval_row;

/* Rows evaluated from anchor a (or a converted file): the weights of format f are
 * dequantize(SnS(a -> f)), the forward runs with qt_quant{f, a's rounding, weights_ready,
 * activations, head as stored}. fp32: a's own weights dequantized, nothing else quantized.
 * Formats a cannot reach are skipped with a note. Progress lines go to log (NULL: none), each
 * prefixed with prog. Returns 0, or -1 with a message (mismatching anchor, arena failure). */
int qt_eval_anchor_rows(qt_evaluator *e, const qt_anchor_ckpt *a, const char *path,
                        bool activations, qt_eval_row *rows, int n, FILE *log, const char *prog,
                        char *err, size_t errlen);
/* Rows of float weights (the model must hold them): format f runs with base's options and
 * format f (direct fake quantization, or SnS of the anchor-quantized weight when
 * base->weights_via is set); fp32 runs unquantized. The weights are not changed. */
int qt_eval_direct_rows(qt_evaluator *e, const qt_quant *base, qt_eval_row *rows, int n, FILE *log,
                        const char *prog, char *err, size_t errlen);

/* ---- table (evaluate_table.c) ---- */

/* "all" (fp32 and the nine MX formats, most bits first) or a comma-separated list of names.
 * fp32 is put first when missing (the Δ column refers to it). Returns the count, or -1 with a
 * message naming the bad item (unknown name, repeated name). */
int qt_eval_parse_formats(const char *spec, mx_format *out, int max, char *err, size_t errlen);
/* Columns format, bits/element (incl. the scale), val loss, perplexity, Δ vs fp32, and held-out
 * accuracy when some row has one. */
void qt_eval_print_table(FILE *f, const qt_eval_row *rows, int n);
/* The same as CSV: format,bits_per_element,val_loss,perplexity,delta_vs_fp32,note (then accuracy
 * when some row has one); written to
 * path.tmp and renamed. Returns 0, or -1 with a message naming path. */
int qt_eval_write_csv(const char *path, const qt_eval_row *rows, int n, char *err, size_t errlen);

#endif
