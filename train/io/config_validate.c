/* config_validate.c — checks that involve more than one key (each key's own range is checked when
 * it is set). Messages name every key involved, its value and where that value came from, because
 * the fix may belong to any of them. */
#include "train/io/config_keys.h"

#include "data/data.h"

#include <stdio.h>

/* "model.d_model = 130 (x.ini:4)" */
static void describe(const qt_config *c, const char *section, const char *key, char *buf,
                     size_t len) {
    char v[QT_PATH_MAX + 64];
    int idx = qt_cfg_find(section, key);
    qt_cfg_format(c, idx, v, sizeof v);
    snprintf(buf, len, "%s.%s = %s (%s)", section, key, v, c->origin ? c->origin[idx] : "?");
}

/* [lora]: the list of targets, and what an enabled adapter run needs. */
static int validate_lora(const qt_config *c, char *err, size_t errlen) {
    unsigned targets;
    char a[QT_PATH_MAX + 128], b[QT_PATH_MAX + 128];
    if (qt_config_lora_targets(c, &targets, err, errlen) != 0)
        return -1;
    if (!c->lora.enabled)
        return 0;
    describe(c, "lora", "enabled", a, sizeof a);
    if (!c->lora.init_from[0]) {
        snprintf(err, errlen, "%s needs lora.init_from, the checkpoint or anchor of the base model",
                 a);
        return -1;
    }
    if (c->model.attention == QT_ATTN_CROPE) {
        describe(c, "model", "attention", b, sizeof b);
        snprintf(err, errlen, "%s is not supported with %s (adapters on complex projections)", a,
                 b);
        return -1;
    }
    if (c->run.init_from[0]) {
        describe(c, "run", "init_from", b, sizeof b);
        snprintf(err, errlen, "%s takes its weights from lora.init_from; %s must be empty", a, b);
        return -1;
    }
    int small = c->model.d_model < c->model.d_ff ? c->model.d_model : c->model.d_ff;
    if (c->lora.rank > small) {
        describe(c, "lora", "rank", b, sizeof b);
        snprintf(err, errlen, "%s is above the smallest layer dimension (%d): not low rank", b,
                 small);
        return -1;
    }
    return 0;
}

/* sft / grpo: the task's problems must fit the context, and GRPO must start from a policy. */
static int validate_task(const qt_config *c, char *err, size_t errlen) {
    char a[QT_PATH_MAX + 128], b[QT_PATH_MAX + 128];
    if (c->task.min_digits > c->task.max_digits) {
        describe(c, "task", "min_digits", a, sizeof a);
        describe(c, "task", "max_digits", b, sizeof b);
        snprintf(err, errlen, "%s is greater than %s", a, b);
        return -1;
    }
    if (c->run.mode == QT_MODE_PRETRAIN)
        return 0;
    data_task_cfg tc = {c->task.kind, c->task.min_digits, c->task.max_digits};
    int64_t longest = (int64_t)data_task_max_len(&tc); /* prompt + answer + terminator */
    int64_t need = longest - 1;
    if (c->run.mode == QT_MODE_GRPO && c->grpo.max_new_tokens > 0) {
        /* the longest prompt is longest - (answer + 1); its completion is fed but the last token */
        int64_t prompt = (int64_t)data_task_max_prompt_len(&tc);
        if (prompt + c->grpo.max_new_tokens - 1 > need)
            need = prompt + c->grpo.max_new_tokens - 1;
    }
    describe(c, "model", "seq_len", a, sizeof a);
    if (c->model.seq_len < need) {
        describe(c, "task", "max_digits", b, sizeof b);
        snprintf(err, errlen,
                 "%s is too short for %s problems with %s%s: they need a context of %lld tokens", a,
                 data_task_kind_name(c->task.kind), b,
                 c->run.mode == QT_MODE_GRPO && c->grpo.max_new_tokens > 0
                     ? " and grpo.max_new_tokens"
                     : "",
                 (long long)need);
        return -1;
    }
    if (c->run.mode == QT_MODE_GRPO && !c->run.init_from[0] && !c->lora.enabled) {
        describe(c, "run", "mode", a, sizeof a);
        snprintf(err, errlen,
                 "%s starts from a trained policy: set run.init_from (e.g. the run directory of "
                 "an sft run) or enable [lora] on a base",
                 a);
        return -1;
    }
    return 0;
}

int qt_config_validate(const qt_config *c, char *err, size_t errlen) {
    /* Fields set by code rather than parsed text get the per-key checks too: every value must read
     * back through the parser (this also keeps the divisions below safe). */
    qt_config scratch;
    for (size_t i = 0; i < qt_cfg_nkeys; i++) {
        char v[QT_PATH_MAX + 64];
        qt_cfg_format(c, (int)i, v, sizeof v);
        if (qt_cfg_assign(&scratch, (int)i, v, c->origin ? c->origin[i] : "?", err, errlen) != 0)
            return -1;
    }
    char a[QT_PATH_MAX + 128], b[QT_PATH_MAX + 128];
    int C = c->model.d_model, NH = c->model.n_head;
    describe(c, "model", "d_model", a, sizeof a);
    if (C % NH != 0) {
        describe(c, "model", "n_head", b, sizeof b);
        snprintf(err, errlen, "%s is not divisible by %s", a, b);
        return -1;
    }
    bool crope = c->model.attention == QT_ATTN_CROPE;
    if (crope && c->model.positions != QT_POS_ROPE) {
        describe(c, "model", "attention", a, sizeof a);
        describe(c, "model", "positions", b, sizeof b);
        snprintf(err, errlen,
                 "%s rotates q and k by position itself (rotary positions); %s would add a second "
                 "position encoding: set model.positions = rope",
                 a, b);
        return -1;
    }
    describe(c, "model", "d_model", a, sizeof a);
    if (crope && C % 2 != 0) {
        describe(c, "model", "attention", b, sizeof b);
        snprintf(err, errlen, "%s must be even for %s (it pairs dimensions as complex numbers)", a,
                 b);
        return -1;
    }
    /* RoPE rotates pairs (2j, 2j+1) inside each head; CRoPE does the same with complex pairs. */
    if ((c->model.positions == QT_POS_ROPE || crope) && (C / NH) % 2 != 0) {
        char n[QT_PATH_MAX + 128];
        describe(c, "model", "n_head", n, sizeof n);
        describe(c, "model", crope ? "attention" : "positions", b, sizeof b);
        snprintf(err, errlen, "head size %d (%s / %s) must be even for %s", C / NH, a, n, b);
        return -1;
    }
    qt_format_set fs;
    if (qt_config_format_set(c, &fs, err, errlen) != 0)
        return -1;
    if (validate_lora(c, err, errlen) != 0 || validate_task(c, err, errlen) != 0)
        return -1;
    if (c->optim.min_lr > c->optim.lr) {
        describe(c, "optim", "min_lr", a, sizeof a);
        describe(c, "optim", "lr", b, sizeof b);
        snprintf(err, errlen, "%s is greater than %s", a, b);
        return -1;
    }
    return 0;
}
