/* config.h — the strict INI configuration of qat-train (inih underneath).
 *
 * Every key has a default, a validated range or choice list and a one-line description, all in one
 * table (config.c); `qat-train --help-config` prints that table. Unknown sections or keys, malformed
 * numbers and out-of-range values are errors that name the file, the line, `section.key` and the
 * bad value. `--set section.key=value` overrides go through the same validation. */
#ifndef QAT_TRAIN_IO_CONFIG_H
#define QAT_TRAIN_IO_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define QT_PATH_MAX 1024

typedef enum { QT_MODE_PRETRAIN = 0, QT_MODE_SFT, QT_MODE_GRPO } qt_run_mode;
typedef enum { QT_NORM_LAYERNORM = 0, QT_NORM_RMSNORM } qt_norm;
typedef enum { QT_POS_ROPE = 0, QT_POS_LEARNED } qt_positions;
typedef enum { QT_ATTN_STANDARD = 0, QT_ATTN_CROPE } qt_attention;
typedef enum { QT_OPT_ADAMW = 0, QT_OPT_SGD } qt_optimizer;
typedef enum { QT_SCHED_COSINE = 0, QT_SCHED_LINEAR, QT_SCHED_CONSTANT } qt_schedule;

typedef struct qt_config {
    struct {
        char out_dir[QT_PATH_MAX];
        uint64_t seed;
        int64_t steps, eval_every, eval_batches, ckpt_every, keep, log_every;
        int threads; /* 0 = all cores */
        qt_run_mode mode;
    } run;
    struct {
        int n_layer, n_head, d_model, d_ff, seq_len, vocab_size;
        qt_norm norm;
        qt_positions positions;
        qt_attention attention;
        bool tie_embeddings;
    } model;
    struct {
        char corpus[QT_PATH_MAX];
        double val_fraction;
        int batch_size;
    } data;
    struct {
        qt_optimizer name;
        double lr, min_lr, momentum, weight_decay, beta1, beta2, eps, grad_clip;
        int64_t warmup_steps;
        qt_schedule schedule;
    } optim;
    /* Where each key's value came from, for error messages about combinations of keys:
     * "configs/x.ini:7", "--set", or "default". Indexed like the key table. */
    char (*origin)[QT_PATH_MAX + 16];
} qt_config;

/* Fill every field with its default. Returns 0, or -1 on allocation failure. */
int qt_config_defaults(qt_config *c);
void qt_config_free(qt_config *c); /* frees origin; the struct itself is the caller's */

/* Parse an INI file over the current values. On error returns -1 and writes a message like
 * "configs/x.ini:7: [optim] lr = 'abc': not a number" into err. */
int qt_config_load(qt_config *c, const char *path, char *err, size_t errlen);
/* Apply one "section.key=value" override (same validation; the origin is "--set"). */
int qt_config_set(qt_config *c, const char *assignment, char *err, size_t errlen);
/* Cross-key checks (d_model % n_head, even head size for RoPE, ...). Messages name every key
 * involved and where each was set. */
int qt_config_validate(const qt_config *c, char *err, size_t errlen);

/* The resolved configuration as INI text (every key, canonical formatting) — written to
 * out_dir/config.ini and stored in checkpoints. Parsing it back gives an identical config.
 * Returns a malloc'd string the caller frees. */
char *qt_config_to_ini(const qt_config *c);
/* Parse INI text (e.g. from a checkpoint); `name` is used in messages. */
int qt_config_load_string(qt_config *c, const char *text, const char *name, char *err,
                          size_t errlen);

/* Print every key: section.key, type/range, default, description. */
void qt_config_print_help(FILE *f);

/* Fingerprint of the model architecture (the [model] section): equal configs give equal hashes.
 * Also lists differing [model] keys between two configs into err-like buffer `diff` ("n_layer:
 * checkpoint 4, config 6; d_model: ..."); returns the number of differing keys. */
uint64_t qt_config_model_hash(const qt_config *c);
int qt_config_model_diff(const qt_config *a, const qt_config *b, char *diff, size_t difflen);

/* Names of enum values as used in INI files ("cosine", "rope", ...). */
const char *qt_schedule_name(qt_schedule s);

#endif
