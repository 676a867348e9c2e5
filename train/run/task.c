/* task.c — the held-out set of the arithmetic task, its loss batches, and completion by the KV
 * cache (GRPO rollouts, greedy held-out accuracy). */
#include "train/run/task.h"

#include <stdlib.h>
#include <string.h>

int qt_task_open(qt_task *t, const qt_config *c, char *err, size_t errlen) {
    memset(t, 0, sizeof *t);
    t->cfg = (data_task_cfg){c->task.kind, c->task.min_digits, c->task.max_digits};
    if (data_task_cfg_validate(&t->cfg, err, errlen) != 0)
        return -1;
    t->n_held_out = (size_t)c->task.eval_size;
    t->held_out = calloc(t->n_held_out, sizeof *t->held_out);
    if (!t->held_out) {
        snprintf(err, errlen, "out of memory for %zu held-out problems", t->n_held_out);
        return -1;
    }
    char why[512];
    if (data_task_eval_set(&t->cfg, t->n_held_out, c->task.eval_seed, t->held_out, why,
                           sizeof why) != 0) {
        snprintf(err, errlen, "task.eval_size = %lld: %s", (long long)c->task.eval_size, why);
        qt_task_close(t);
        return -1;
    }
    /* the longest answer: the longest sample minus the shortest prompt that reaches it */
    int longest = (int)(data_task_max_len(&t->cfg) - data_task_max_prompt_len(&t->cfg));
    t->max_new = c->grpo.max_new_tokens > 0 ? c->grpo.max_new_tokens : longest;
    return 0;
}

void qt_task_close(qt_task *t) {
    if (!t)
        return;
    free(t->held_out);
    memset(t, 0, sizeof *t);
}

size_t qt_task_val_batches(const qt_task *t, int B) {
    return (t->n_held_out + (size_t)B - 1) / (size_t)B;
}

size_t qt_task_val_batch(const qt_task *t, size_t b, int B, int T, int32_t *x, int32_t *y) {
    size_t first = b * (size_t)B, n = t->n_held_out - first;
    if (n > (size_t)B)
        n = (size_t)B;
    data_task_sft_rows(t->held_out + first, n, (size_t)T, x, y);
    for (size_t i = n * (size_t)T; i < (size_t)B * (size_t)T; i++) {
        x[i] = DATA_TASK_PAD;
        y[i] = -1;
    }
    size_t targets = 0;
    for (size_t i = 0; i < n * (size_t)T; i++)
        targets += y[i] >= 0;
    return targets;
}

int qt_task_complete(qt_kv_cache *kv, qt_sampler *s, data_rng *rng, const float *first_logits,
                     int max_new, int32_t *out, int *n, bool *terminated, float *logits, char *err,
                     size_t errlen) {
    const float *cur = first_logits;
    *n = 0;
    *terminated = false;
    while (*n < max_new) {
        int32_t tok = qt_sample(s, cur, rng);
        out[(*n)++] = tok;
        if (tok == DATA_TASK_TERMINATOR) {
            *terminated = true;
            return 0;
        }
        if (*n == max_new)
            return 0;
        if (qt_kv_step(kv, &tok, 1, logits, err, errlen) != 0)
            return -1;
        cur = logits;
    }
    return 0;
}

int qt_task_accuracy(const qt_task *t, qt_model *m, double *accuracy, char *err, size_t errlen) {
    int cap = (int)(data_task_max_len(&t->cfg) - 1);
    qt_kv_cache *kv = qt_kv_create(m, cap < m->T ? cap : m->T, err, errlen);
    qt_sampler s = {0};
    qt_sample_opts greedy = {.temperature = 0, .top_k = 0, .top_p = 1};
    float *first = malloc(2 * (size_t)m->V * sizeof *first);
    int32_t *out = malloc((size_t)t->max_new * sizeof *out);
    uint8_t *bytes = malloc((size_t)t->max_new);
    int rc = -1;
    if (!kv || !first || !out || !bytes || qt_sampler_init(&s, m->V, &greedy, err, errlen) != 0) {
        if (kv)
            snprintf(err, errlen, "out of memory for held-out accuracy");
        goto done;
    }
    size_t correct = 0;
    for (size_t i = 0; i < t->n_held_out; i++) {
        const data_task_problem *p = &t->held_out[i];
        int32_t prompt[DATA_TASK_PROMPT_CAP];
        data_encode(p->prompt, p->prompt_len, prompt);
        qt_kv_reset(kv);
        int n;
        bool term;
        int max_new = t->max_new;
        if (max_new > kv->cap - (int)p->prompt_len + 1)
            max_new = kv->cap - (int)p->prompt_len + 1;
        if (qt_kv_step(kv, prompt, (int)p->prompt_len, first, err, errlen) != 0 ||
            qt_task_complete(kv, &s, NULL, first, max_new, out, &n, &term, first + m->V, err,
                             errlen) != 0)
            goto done;
        for (int j = 0; j < n; j++)
            bytes[j] = (uint8_t)out[j];
        correct += data_task_reward(p, bytes, (size_t)n) == 1.0;
    }
    *accuracy = (double)correct / (double)t->n_held_out;
    rc = 0;
done:
    qt_kv_free(kv);
    qt_sampler_free(&s);
    free(first);
    free(out);
    free(bytes);
    return rc;
}
