/* config.h — the strict INI configuration of qat-train (inih underneath).
 *
 * Every key has a default, a validated range or choice list and a one-line description, all in one
 * table (config_keys.c); `qat-train --help-config` prints that table. Unknown sections or keys,
 * malformed numbers and out-of-range values are errors that name the file, the line, `section.key`
 * and the bad value. `--set section.key=value` overrides go through the same validation.
 *
 * The INI dialect (inih r55 plus our reader, see config.c):
 *   - `[section]` and `key = value` lines (`key: value` also works); `;` or `#` starts a comment
 *     line, and ` ;` starts a comment after a value. Keys and enum values are case-sensitive;
 *     booleans accept true/false, 1/0, yes/no, on/off in any case.
 *   - Leading whitespace is ignored: an indented line is an ordinary line, never a continuation
 *     of the previous value (Python-style multi-line values do not exist here).
 *   - A key may appear once per file; lines are at most QT_CONFIG_LINE_MAX bytes.
 *   - Integers are plain decimal (no "1e3", "0x10", "+4"); doubles must be finite; values are
 *     never empty; paths hold no ';' or control characters.
 * Loading is all or nothing: on any error the config keeps its previous values and origins. */
#ifndef QAT_TRAIN_IO_CONFIG_H
#define QAT_TRAIN_IO_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define QT_PATH_MAX 1024
/* inih r55 reads lines into a 200-byte buffer and splits longer ones; we reject lines over this
 * many bytes (newline excluded) instead. */
#define QT_CONFIG_LINE_MAX 196
/* String values (paths) are limited so that `key = value` always fits in one line: a resolved
 * config.ini must parse back. */
#define QT_CONFIG_STRING_MAX 160
/* A config file is read whole; anything bigger is not a config file. */
#define QT_CONFIG_FILE_MAX (1 << 20)

typedef enum { QT_MODE_PRETRAIN = 0, QT_MODE_SFT, QT_MODE_GRPO } qt_run_mode;
typedef enum { QT_NORM_LAYERNORM = 0, QT_NORM_RMSNORM } qt_norm;
typedef enum { QT_POS_ROPE = 0, QT_POS_LEARNED } qt_positions;
typedef enum { QT_ATTN_STANDARD = 0, QT_ATTN_CROPE } qt_attention;
typedef enum { QT_CROPE_OUT_COMPLEX = 0, QT_CROPE_OUT_REAL } qt_crope_output;
typedef enum { QT_OPT_ADAMW = 0, QT_OPT_SGD } qt_optimizer;
typedef enum { QT_SCHED_COSINE = 0, QT_SCHED_LINEAR, QT_SCHED_CONSTANT } qt_schedule;
typedef enum { QT_QUANT_NONE = 0, QT_QUANT_SINGLE, QT_QUANT_MULTI } qt_quant_mode;
typedef enum { QT_QUANTIZE_WEIGHTS = 0, QT_QUANTIZE_WEIGHTS_ACTS } qt_quantize_what;
typedef enum { QT_ROUND_EVEN = 0, QT_ROUND_NEAREST } qt_rounding; /* = mx_rounding */
typedef enum { QT_STE_IDENTITY = 0, QT_STE_CLIPPED } qt_ste;      /* = ag_ste */
typedef enum { QT_ANCHOR_MXINT8 = 0, QT_ANCHOR_MXFP8_E4M3, QT_ANCHOR_MXFP8_E5M2 } qt_anchor;
typedef enum {
    QT_LORA_BASE_NF4 = 0,
    QT_LORA_BASE_MXINT4,
    QT_LORA_BASE_MXFP4_E2M1,
    QT_LORA_BASE_MXINT8,
    QT_LORA_BASE_MXFP8_E4M3,
    QT_LORA_BASE_FP32 /* plain LoRA: the frozen base stays float32 */
} qt_lora_base;
typedef enum { QT_GRPO_SCALE_GROUP = 0, QT_GRPO_SCALE_BATCH, QT_GRPO_SCALE_NONE } qt_grpo_scale;
typedef enum { QT_GRPO_LOSS_GRPO = 0, QT_GRPO_LOSS_DR_GRPO, QT_GRPO_LOSS_DAPO } qt_grpo_loss;

typedef struct qt_config {
    struct {
        char out_dir[QT_PATH_MAX];
        uint64_t seed;
        int64_t steps, eval_every, eval_batches, ckpt_every, keep, log_every;
        int threads; /* 0 = all cores */
        qt_run_mode mode;
        char init_from[QT_PATH_MAX]; /* "" = random initialisation */
    } run;
    struct {
        int n_layer, n_head, d_model, d_ff, seq_len, vocab_size;
        qt_norm norm;
        qt_positions positions;
        qt_attention attention;
        qt_crope_output crope_output;
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
    struct {
        qt_quant_mode mode;
        char formats[QT_PATH_MAX];        /* comma-separated MX format names */
        char format_weights[QT_PATH_MAX]; /* "uniform" or one weight per format */
        qt_quantize_what quantize;
        qt_rounding rounding;
        qt_ste ste;
        int64_t start_step;
        qt_anchor anchor;
        bool weights_via_anchor, quantize_head;
    } quant;
    struct {
        bool enabled;
        char init_from[QT_PATH_MAX]; /* the base: a training checkpoint or an anchor */
        qt_lora_base base_format;
        bool double_quant;
        int rank;
        double alpha, dropout;
        char targets[QT_PATH_MAX]; /* "all-linear" or a list of q,k,v,o,up,down */
        bool rslora, train_norms;
    } lora;
    struct {                        /* run.mode = sft | grpo: the arithmetic task (data/task.c) */
        int kind;                   /* a data_task_kind */
        int min_digits, max_digits; /* operand digit counts */
        int64_t eval_size;          /* held-out problems: never trained on, scored every eval */
        uint64_t eval_seed;         /* the held-out set is a function of (task keys, eval_seed) */
    } task;
    struct {                                              /* run.mode = grpo (train/run/grpo.c) */
        int prompts_per_step, group_size, max_new_tokens; /* max_new_tokens 0: the task's longest */
        double temperature, top_p;
        int top_k;
        qt_grpo_scale scale_rewards;
        double epsilon, epsilon_high, beta;
        int iterations;
        qt_grpo_loss loss_type;
        bool mask_truncated;
    } grpo;
    /* Where each key's value came from, for error messages about combinations of keys:
     * "configs/x.ini:7", "--set", or "default". Indexed like the key table. */
    char (*origin)[QT_PATH_MAX + 16];
} qt_config;

/* Fill every field with its default (origins "default"). c must not hold an origin array yet
 * (fresh, or after qt_config_free). Returns 0, or -1 on allocation failure. */
int qt_config_defaults(qt_config *c);
void qt_config_free(qt_config *c); /* frees origin; the struct itself is the caller's */

/* Parse an INI file over the current values (keys it does not mention keep theirs). On error
 * returns -1, leaves c unchanged and writes a message like
 * "configs/x.ini:7: [optim] lr = 'abc': not a number" into err. Files over QT_CONFIG_FILE_MAX
 * bytes are refused. */
int qt_config_load(qt_config *c, const char *path, char *err, size_t errlen);
/* Apply one "section.key=value" override (same validation; the origin is "--set"). Spaces around
 * the parts are ignored; a later --set of the same key wins. */
int qt_config_set(qt_config *c, const char *assignment, char *err, size_t errlen);
/* Cross-key checks (d_model % n_head, even head size for RoPE/CRoPE, even d_model for CRoPE,
 * min_lr <= lr, task digits and the context the task needs, what GRPO starts from), after
 * re-checking every key's own range (fields may have been set by code). Messages name every key
 * involved, its value and where it was set: "model.d_model = 130 (x.ini:3) is not divisible by
 * model.n_head = 4 (default)". */
int qt_config_validate(const qt_config *c, char *err, size_t errlen);

/* The resolved configuration as INI text (every key, canonical formatting) — written to
 * out_dir/config.ini and stored in checkpoints. Parsing it back gives an identical config.
 * Returns a malloc'd string the caller frees. */
char *qt_config_to_ini(const qt_config *c);
/* Parse INI text (e.g. from a checkpoint) like qt_config_load; `name` is used in messages and
 * origins. */
int qt_config_load_string(qt_config *c, const char *text, const char *name, char *err,
                          size_t errlen);

/* Print every key: section.key, type/range, default, description. */
void qt_config_print_help(FILE *f);

/* Fingerprint of the model architecture: FNV-1a 64 of the [model] section exactly as
 * qt_config_to_ini writes it ("[model]\n" then "key = value\n" per key). Equal [model] values
 * give equal hashes; other sections do not matter.
 * qt_config_model_diff lists the [model] keys whose values differ, a's value first, into `diff`
 * (may be NULL): "n_layer: 4 vs 6; norm: layernorm vs rmsnorm". Callers say which side is which
 * ("checkpoint vs config: ..."). Returns the number of differing keys. */
uint64_t qt_config_model_hash(const qt_config *c);
int qt_config_model_diff(const qt_config *a, const qt_config *b, char *diff, size_t difflen);

/* Names of enum values as used in INI files ("cosine", "rope", ...); "?" for a value outside the
 * enum. */
const char *qt_schedule_name(qt_schedule s);
const char *qt_quant_mode_name(qt_quant_mode m);
const char *qt_anchor_name(qt_anchor a);         /* "mxint8" | "mxfp8_e4m3" | "mxfp8_e5m2" */
const char *qt_lora_base_name(qt_lora_base b);   /* "nf4" | "mxint4" | ... */
const char *qt_grpo_scale_name(qt_grpo_scale s); /* "group" | "batch" | "none" */
const char *qt_grpo_loss_name(qt_grpo_loss l);   /* "grpo" | "dr_grpo" | "dapo" */

/* [quant] formats and format_weights, parsed: formats as mx_format values, weights normalised to
 * sum 1 ("uniform" = equal). Errors name the key, the bad item and where the key was set. */
#define QT_MAX_FORMATS 16
typedef struct qt_format_set {
    int n;
    int formats[QT_MAX_FORMATS]; /* mx_format */
    double weights[QT_MAX_FORMATS];
} qt_format_set;
int qt_config_format_set(const qt_config *c, qt_format_set *out, char *err, size_t errlen);
/* [lora] targets as a bit mask over QT_LORA_Q..QT_LORA_DOWN ("all-linear": all six). Returns 0, or
 * -1 with a message naming the bad item (unknown layer, repeated layer). */
enum { QT_LORA_Q = 0, QT_LORA_K, QT_LORA_V, QT_LORA_O, QT_LORA_UP, QT_LORA_DOWN, QT_LORA_NTARGETS };
int qt_config_lora_targets(const qt_config *c, unsigned *mask, char *err, size_t errlen);
const char *qt_run_mode_name(qt_run_mode m);
const char *qt_norm_name(qt_norm n);
const char *qt_positions_name(qt_positions p);
const char *qt_attention_name(qt_attention a);
const char *qt_crope_output_name(qt_crope_output o);
const char *qt_optimizer_name(qt_optimizer o);

/* Deep copy: *dst becomes an independent copy of *src with its own origin array. Whatever dst
 * held before is overwritten, not freed. Returns 0, or -1 on allocation failure. */
int qt_config_copy(qt_config *dst, const qt_config *src);
/* Where section.key got its value ("x.ini:7", "--set", "default"), or NULL for an unknown key. */
const char *qt_config_origin(const qt_config *c, const char *section, const char *key);
/* Number of keys in the table (the length of the origin array). */
size_t qt_config_key_count(void);

#endif
