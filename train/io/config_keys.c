/* config_keys.c — the one table of configuration keys, and the enum names it shares with the rest
 * of qat. Adding a key is one line below plus its field in qt_config; adding a section ([quant],
 * [lora], ...) is just using its name in those lines (keys of one section stay together). */
#include "train/io/config_keys.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Enum values are stored through an int (config_value.c); the enums must be int-sized. */
_Static_assert(sizeof(qt_run_mode) == sizeof(int) && sizeof(qt_norm) == sizeof(int) &&
                   sizeof(qt_positions) == sizeof(int) && sizeof(qt_attention) == sizeof(int) &&
                   sizeof(qt_crope_output) == sizeof(int) && sizeof(qt_optimizer) == sizeof(int) &&
                   sizeof(qt_schedule) == sizeof(int) && sizeof(qt_quant_mode) == sizeof(int) &&
                   sizeof(qt_quantize_what) == sizeof(int) && sizeof(qt_rounding) == sizeof(int) &&
                   sizeof(qt_ste) == sizeof(int) && sizeof(qt_anchor) == sizeof(int) &&
                   sizeof(qt_lora_base) == sizeof(int) && sizeof(qt_grpo_scale) == sizeof(int) &&
                   sizeof(qt_grpo_loss) == sizeof(int),
               "enum fields are stored as int");

/* Choice lists, in enum order, NULL-terminated; pinned to the enums' last value. */
static const char *const mode_names[] = {"pretrain", "sft", "grpo", NULL};
static const char *const norm_names[] = {"layernorm", "rmsnorm", NULL};
static const char *const pos_names[] = {"rope", "learned", NULL};
static const char *const attn_names[] = {"standard", "crope", NULL};
static const char *const crope_out_names[] = {"complex", "real", NULL};
static const char *const opt_names[] = {"adamw", "sgd", NULL};
static const char *const sched_names[] = {"cosine", "linear", "constant", NULL};
static const char *const qmode_names[] = {"none", "single", "multi", NULL};
static const char *const qwhat_names[] = {"weights", "weights+activations", NULL};
static const char *const round_names[] = {"even", "nearest", NULL};
static const char *const ste_names[] = {"identity", "clipped", NULL};
static const char *const anchor_names[] = {"mxint8", "mxfp8_e4m3", "mxfp8_e5m2", NULL};
static const char *const lora_base_names[] = {"nf4",        "mxint4", "mxfp4_e2m1", "mxint8",
                                              "mxfp8_e4m3", "fp32",   NULL};
static const char *const task_kind_names[] = {"add", "mul", "mixed", NULL}; /* data_task_kind */
static const char *const grpo_scale_names[] = {"group", "batch", "none", NULL};
static const char *const grpo_loss_names[] = {"grpo", "dr_grpo", "dapo", NULL};
#define QT_NNAMES(a) (sizeof(a) / sizeof(a[0]) - 1)
_Static_assert(QT_NNAMES(mode_names) == QT_MODE_GRPO + 1, "mode names");
_Static_assert(QT_NNAMES(norm_names) == QT_NORM_RMSNORM + 1, "norm names");
_Static_assert(QT_NNAMES(pos_names) == QT_POS_LEARNED + 1, "positions names");
_Static_assert(QT_NNAMES(attn_names) == QT_ATTN_CROPE + 1, "attention names");
_Static_assert(QT_NNAMES(crope_out_names) == QT_CROPE_OUT_REAL + 1, "crope_output names");
_Static_assert(QT_NNAMES(opt_names) == QT_OPT_SGD + 1, "optimizer names");
_Static_assert(QT_NNAMES(sched_names) == QT_SCHED_CONSTANT + 1, "schedule names");
_Static_assert(QT_NNAMES(qmode_names) == QT_QUANT_MULTI + 1, "quant mode names");
_Static_assert(QT_NNAMES(qwhat_names) == QT_QUANTIZE_WEIGHTS_ACTS + 1, "quantize names");
_Static_assert(QT_NNAMES(round_names) == QT_ROUND_NEAREST + 1, "rounding names");
_Static_assert(QT_NNAMES(ste_names) == QT_STE_CLIPPED + 1, "ste names");
_Static_assert(QT_NNAMES(anchor_names) == QT_ANCHOR_MXFP8_E5M2 + 1, "anchor names");
_Static_assert(QT_NNAMES(lora_base_names) == QT_LORA_BASE_FP32 + 1, "lora base names");
_Static_assert(QT_NNAMES(grpo_scale_names) == QT_GRPO_SCALE_NONE + 1, "scale_rewards names");
_Static_assert(QT_NNAMES(grpo_loss_names) == QT_GRPO_LOSS_DAPO + 1, "loss_type names");

static const char *enum_name(const char *const *names, size_t n, int v) {
    return v >= 0 && (size_t)v < n ? names[v] : "?";
}
const char *qt_run_mode_name(qt_run_mode m) {
    return enum_name(mode_names, QT_NNAMES(mode_names), (int)m);
}
const char *qt_norm_name(qt_norm n) { return enum_name(norm_names, QT_NNAMES(norm_names), (int)n); }
const char *qt_positions_name(qt_positions p) {
    return enum_name(pos_names, QT_NNAMES(pos_names), (int)p);
}
const char *qt_attention_name(qt_attention a) {
    return enum_name(attn_names, QT_NNAMES(attn_names), (int)a);
}
const char *qt_crope_output_name(qt_crope_output o) {
    return enum_name(crope_out_names, QT_NNAMES(crope_out_names), (int)o);
}
const char *qt_optimizer_name(qt_optimizer o) {
    return enum_name(opt_names, QT_NNAMES(opt_names), (int)o);
}
const char *qt_quant_mode_name(qt_quant_mode m) {
    return enum_name(qmode_names, QT_NNAMES(qmode_names), (int)m);
}
const char *qt_anchor_name(qt_anchor a) {
    return enum_name(anchor_names, QT_NNAMES(anchor_names), (int)a);
}
const char *qt_lora_base_name(qt_lora_base b) {
    return enum_name(lora_base_names, QT_NNAMES(lora_base_names), (int)b);
}
const char *qt_grpo_scale_name(qt_grpo_scale s) {
    return enum_name(grpo_scale_names, QT_NNAMES(grpo_scale_names), (int)s);
}
const char *qt_grpo_loss_name(qt_grpo_loss l) {
    return enum_name(grpo_loss_names, QT_NNAMES(grpo_loss_names), (int)l);
}
const char *qt_schedule_name(qt_schedule s) {
    return enum_name(sched_names, QT_NNAMES(sched_names), (int)s);
}

typedef char qt_path_field[QT_PATH_MAX];

/* Offset of sec.key, checked at compile time to be a field of type T: comparing pointers to
 * different types is a constraint violation (an error under -Werror). Not evaluated. */
#define QT_FIELD(sec, key, T)                                                                      \
    (offsetof(qt_config, sec.key) + 0 * sizeof(&((qt_config *)0)->sec.key == (T *)0))

#define QT_INT(sec, key, def, lo, hi, desc)                                                        \
    { #sec, #key, QT_KT_INT, QT_FIELD(sec, key, int), def, lo, hi, 0, 0, 0, NULL, desc }
#define QT_I64(sec, key, def, lo, hi, desc)                                                        \
    { #sec, #key, QT_KT_I64, QT_FIELD(sec, key, int64_t), def, lo, hi, 0, 0, 0, NULL, desc }
#define QT_U64(sec, key, def, desc)                                                                \
    { #sec, #key, QT_KT_U64, QT_FIELD(sec, key, uint64_t), def, 0, 0, 0, 0, 0, NULL, desc }
/* flags: QT_KEY_MIN_OPEN / QT_KEY_MAX_OPEN mark an open end; hi = INFINITY means no upper bound. */
#define QT_DBL(sec, key, def, lo, hi, flags, desc)                                                 \
    { #sec, #key, QT_KT_DOUBLE, QT_FIELD(sec, key, double), def, 0, 0, lo, hi, flags, NULL, desc }
#define QT_BOOL(sec, key, def, desc)                                                               \
    { #sec, #key, QT_KT_BOOL, QT_FIELD(sec, key, bool), def, 0, 0, 0, 0, 0, NULL, desc }
#define QT_PATH(sec, key, def, desc)                                                               \
    { #sec, #key, QT_KT_PATH, QT_FIELD(sec, key, qt_path_field), def, 0, 0, 0, 0, 0, NULL, desc }
#define QT_LIST(sec, key, def, desc)                                                               \
    { #sec, #key, QT_KT_LIST, QT_FIELD(sec, key, qt_path_field), def, 0, 0, 0, 0, 0, NULL, desc }
#define QT_ENUM(sec, key, T, names, def, desc)                                                     \
    { #sec, #key, QT_KT_ENUM, QT_FIELD(sec, key, T), def, 0, 0, 0, 0, 0, names, desc }
/* A [model] enum added later: hashed into the model fingerprint only away from its default. */
#define QT_ENUM_NEW(sec, key, T, names, def, desc)                                                 \
    {                                                                                              \
#sec, #key, QT_KT_ENUM, QT_FIELD(sec, key, T), def, 0, 0, 0, 0, QT_KEY_HASH_IF_SET, names, \
            desc                                                                                   \
    }

#define QT_BIG 1000000000 /* 1e9: an upper bound for step counts that no run reaches */
#define LO_OPEN QT_KEY_MIN_OPEN
#define HI_OPEN QT_KEY_MAX_OPEN

/* One key per line, on purpose: clang-format would fold these rows. */
/* clang-format off */
const qt_key qt_cfg_keys[] = {
    QT_PATH(run, out_dir, "runs/default", "output directory: config.ini, metrics.csv, ckpt/, anchor.h5"),
    QT_U64(run, seed, "1337", "seed of every RNG stream (init, data, formats, dropout, sampling)"),
    QT_I64(run, steps, "1000", 1, QT_BIG, "optimizer steps to train"),
    QT_I64(run, eval_every, "100", 0, QT_BIG, "validation loss every N steps (0 = never)"),
    QT_I64(run, eval_batches, "8", 1, 1000000, "validation batches per evaluation"),
    QT_I64(run, ckpt_every, "250", 0, QT_BIG, "checkpoint every N steps (0 = only at the end or on interrupt)"),
    QT_I64(run, keep, "3", 1, 1000, "newest checkpoints kept in out_dir/ckpt"),
    QT_I64(run, log_every, "10", 1, QT_BIG, "progress line every N steps"),
    QT_INT(run, threads, "0", 0, 1024, "OpenMP threads (0 = all cores)"),
    QT_ENUM(run, mode, qt_run_mode, mode_names, "pretrain", "pretrain (next byte of data.corpus), sft (answers of [task] problems) or grpo (RL on [task] rewards, [grpo])"),
    QT_PATH(run, init_from, "", "start from the weights of this checkpoint (train or anchor; same [model]), or of the newest checkpoint of this run directory, instead of random init; optimizer, step and data start fresh"),

    QT_INT(model, n_layer, "4", 1, 256, "transformer blocks L"),
    QT_INT(model, n_head, "4", 1, 256, "attention heads NH (must divide d_model)"),
    QT_INT(model, d_model, "128", 1, 65536, "residual width C"),
    QT_INT(model, d_ff, "512", 1, 262144, "MLP hidden width F"),
    QT_INT(model, seq_len, "128", 1, 65536, "context length T"),
    QT_INT(model, vocab_size, "256", 256, 1048576, "vocabulary size V (byte tokens need 256)"),
    QT_ENUM(model, norm, qt_norm, norm_names, "layernorm", "normalisation layer"),
    QT_ENUM(model, positions, qt_positions, pos_names, "rope", "position encoding"),
    QT_ENUM(model, attention, qt_attention, attn_names, "standard", "attention: standard, or crope (complex-linear q,k,v: half the parameters; needs positions = rope)"),
    QT_ENUM_NEW(model, crope_output, qt_crope_output, crope_out_names, "complex", "crope only: output projection complex-linear (2d² attention parameters) or real (2.5d²)"),
    QT_BOOL(model, tie_embeddings, "true", "output projection shares wte (no lm_head)"),

    QT_PATH(data, corpus, "/usr/share/games/fortunes", "text file, or directory of text files"),
    QT_DBL(data, val_fraction, "0.05", 0, 0.5, LO_OPEN, "fraction of the corpus bytes held out for validation"),
    QT_INT(data, batch_size, "16", 1, 65536, "sequences per step B"),

    QT_ENUM(optim, name, qt_optimizer, opt_names, "adamw", "optimizer"),
    QT_DBL(optim, lr, "1e-3", 0, 10, LO_OPEN, "peak learning rate"),
    QT_DBL(optim, min_lr, "1e-4", 0, 10, 0, "learning rate at the end of the schedule (<= lr)"),
    QT_DBL(optim, momentum, "0.9", 0, 1, HI_OPEN, "momentum (sgd only)"),
    QT_DBL(optim, weight_decay, "0.1", 0, 10, 0, "decoupled weight decay (matrices, embeddings)"),
    QT_DBL(optim, beta1, "0.9", 0, 1, HI_OPEN, "AdamW first-moment decay"),
    QT_DBL(optim, beta2, "0.95", 0, 1, HI_OPEN, "AdamW second-moment decay"),
    QT_DBL(optim, eps, "1e-8", 0, 1, LO_OPEN, "AdamW denominator epsilon"),
    QT_I64(optim, warmup_steps, "100", 0, QT_BIG, "linear warmup steps from 0 to lr"),
    QT_ENUM(optim, schedule, qt_schedule, sched_names, "cosine", "decay from lr to min_lr after warmup"),
    QT_DBL(optim, grad_clip, "1.0", 0, INFINITY, 0, "clip the global gradient norm to this (0 = off)"),

    QT_ENUM(quant, mode, qt_quant_mode, qmode_names, "none", "fake quantization: none (fp32), single format, or multi (one random format per step)"),
    QT_LIST(quant, formats, "mxint8,mxint6,mxint4,mxfp8_e4m3,mxfp8_e5m2,mxfp6_e3m2,mxfp6_e2m3,mxfp4_e2m1", "MX formats to train in (single: exactly one)"),
    QT_LIST(quant, format_weights, "uniform", "sampling weights, one per format, or uniform"),
    QT_ENUM(quant, quantize, qt_quantize_what, qwhat_names, "weights+activations", "what linear layers fake-quantize (blocks of 32 along the reduction dim)"),
    QT_ENUM(quant, rounding, qt_rounding, round_names, "even", "element rounding: ties to even (OCP) or away from zero"),
    QT_ENUM(quant, ste, qt_ste, ste_names, "identity", "straight-through gradient: identity, or zero where the input saturated"),
    QT_I64(quant, start_step, "0", 0, QT_BIG, "train in fp32 before this step (delayed fake quantization)"),
    QT_ENUM(quant, anchor, qt_anchor, anchor_names, "mxint8", "format of anchor.h5, the packed checkpoint lower formats are sliced from"),
    QT_BOOL(quant, weights_via_anchor, "false", "lower-format weights = Slice-and-Scale of the anchor-quantized weight"),
    QT_BOOL(quant, quantize_head, "false", "also fake-quantize the output projection (lm_head or tied wte)"),

    QT_BOOL(lora, enabled, "false", "QLoRA: freeze the base (lora.init_from) packed in base_format and train low-rank adapters only"),
    QT_PATH(lora, init_from, "", "the base: a training checkpoint or anchor with this [model], or a run directory (its newest checkpoint); required when enabled"),
    QT_ENUM(lora, base_format, qt_lora_base, lora_base_names, "nf4", "format the frozen base linear weights are kept in, packed (fp32: plain LoRA, for comparison)"),
    QT_BOOL(lora, double_quant, "true", "nf4 only: 8-bit block absmax values (about 4.13 instead of 4.5 bits per weight)"),
    QT_INT(lora, rank, "8", 1, 4096, "adapter rank r"),
    QT_DBL(lora, alpha, "16", 0, 1e6, LO_OPEN, "adapter scale numerator: y = W x + (alpha/r)·B A x"),
    QT_DBL(lora, dropout, "0.05", 0, 1, HI_OPEN, "dropout on the adapter input (training steps only)"),
    QT_LIST(lora, targets, "all-linear", "layers with adapters: all-linear, or a list of q,k,v,o,up,down"),
    QT_BOOL(lora, rslora, "false", "rank-stabilised scale alpha/sqrt(r) instead of alpha/r"),
    QT_BOOL(lora, train_norms, "false", "also train the norm weights and biases (they are float32)"),

    QT_ENUM(task, kind, int, task_kind_names, "add", "sft/grpo: arithmetic problems A+B, A*B, or mixed (each + or * with probability 1/2)"),
    QT_INT(task, min_digits, "2", 1, 9, "fewest digits of an operand"),
    QT_INT(task, max_digits, "2", 1, 9, "most digits of an operand (>= min_digits)"),
    QT_I64(task, eval_size, "200", 1, 100000, "held-out problems (never trained on): loss and exact-match accuracy at every evaluation"),
    QT_U64(task, eval_seed, "1", "seed of the held-out set (independent of run.seed, so runs with other seeds share it)"),

    QT_INT(grpo, prompts_per_step, "8", 1, 65536, "prompts per GRPO step"),
    QT_INT(grpo, group_size, "8", 2, 4096, "completions sampled per prompt (the group advantages are normalised over)"),
    QT_INT(grpo, max_new_tokens, "0", 0, 65536, "completion length limit (0 = the task's longest answer plus its terminator)"),
    QT_DBL(grpo, temperature, "1.0", 0, 100, LO_OPEN, "sampling temperature of the rollouts"),
    QT_INT(grpo, top_k, "0", 0, 1048576, "sample among the k most likely tokens (0 = all)"),
    QT_DBL(grpo, top_p, "1.0", 0, 1, LO_OPEN, "nucleus sampling mass (1 = all)"),
    QT_ENUM(grpo, scale_rewards, qt_grpo_scale, grpo_scale_names, "group", "advantage = (r - group mean) / std of the group, of the whole batch, or not divided"),
    QT_DBL(grpo, epsilon, "0.2", 0, 10, 0, "policy ratio clipped below at 1 - epsilon"),
    QT_DBL(grpo, epsilon_high, "0.2", 0, 10, 0, "policy ratio clipped above at 1 + epsilon_high (DAPO: 0.28)"),
    QT_DBL(grpo, beta, "0.0", 0, 1000, 0, "KL penalty (k3 estimator) to the reference policy: the starting weights, or the base with adapters off under LoRA"),
    QT_INT(grpo, iterations, "1", 1, 64, "optimizer updates per batch of rollouts (mu), against their stored log-probs"),
    QT_ENUM(grpo, loss_type, qt_grpo_loss, grpo_loss_names, "grpo", "token losses averaged per sequence then over sequences (grpo), summed / (sequences x max_new_tokens) (dr_grpo), or averaged over all tokens (dapo)"),
    QT_BOOL(grpo, mask_truncated, "false", "completions that hit max_new_tokens without the terminator get no gradient"),
};
/* clang-format on */
const size_t qt_cfg_nkeys = sizeof(qt_cfg_keys) / sizeof(qt_cfg_keys[0]);

int qt_cfg_find(const char *section, const char *key) {
    for (size_t i = 0; i < qt_cfg_nkeys; i++)
        if (strcmp(qt_cfg_keys[i].section, section) == 0 && strcmp(qt_cfg_keys[i].name, key) == 0)
            return (int)i;
    return -1;
}

bool qt_cfg_section_known(const char *section) {
    for (size_t i = 0; i < qt_cfg_nkeys; i++)
        if (strcmp(qt_cfg_keys[i].section, section) == 0)
            return true;
    return false;
}

void qt_cfg_known_sections(char *buf, size_t len) {
    size_t n = 0;
    if (len == 0)
        return;
    buf[0] = '\0';
    for (size_t i = 0; i < qt_cfg_nkeys; i++) {
        if (i > 0 && strcmp(qt_cfg_keys[i].section, qt_cfg_keys[i - 1].section) == 0)
            continue;
        int w = snprintf(buf + n, len - n, "%s%s", i ? ", " : "", qt_cfg_keys[i].section);
        if (w < 0 || (size_t)w >= len - n)
            return;
        n += (size_t)w;
    }
}

size_t qt_config_key_count(void) { return qt_cfg_nkeys; }
