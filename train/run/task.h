/* task.h — the arithmetic task behind run.mode = sft | grpo (problems from data/task.c): the
 * held-out evaluation set and its loss batches, completions sampled through a KV cache, and
 * held-out exact-match accuracy by greedy decoding.
 *
 * The held-out set is data_task_eval_set(task keys, task.eval_size, task.eval_seed): the same for
 * every run of a task config whatever its run.seed, and never drawn for training (the SFT batches
 * and GRPO prompts skip it). */
#ifndef QAT_TRAIN_RUN_TASK_H
#define QAT_TRAIN_RUN_TASK_H

#include "data/data.h"
#include "train/io/config.h"
#include "train/run/generate.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct qt_task {
    data_task_cfg cfg;
    data_task_problem *held_out; /* [n_held_out] */
    size_t n_held_out;
    int max_new; /* completion limit: grpo.max_new_tokens, or the longest answer + terminator */
} qt_task;

/* From a validated config in mode sft or grpo. Returns 0, or -1 with a message (memory, or a
 * held-out set larger than the problems the task keys allow). */
int qt_task_open(qt_task *t, const qt_config *c, char *err, size_t errlen);
void qt_task_close(qt_task *t); /* zeroed task is a no-op */

/* The held-out set in SFT rows, B problems per batch (the last batch padded with rows whose
 * targets are all ignored). qt_task_val_batch writes batch b into x, y (B,T) and returns its
 * number of answer targets. */
size_t qt_task_val_batches(const qt_task *t, int B);
size_t qt_task_val_batch(const qt_task *t, size_t b, int B, int T, int32_t *x, int32_t *y);

/* Greedy or sampled completion of a prompt already fed to kv (kv->len = its length), starting
 * from the logits that feed returned (first_logits [V], not modified): tokens are drawn by s
 * (rng: the sample stream, untouched when s is greedy) and fed one by one until the terminator
 * or max_new tokens. out [max_new] gets them; *n the count, *terminated whether the last is the
 * terminator. logits [V] is scratch. Returns 0, or -1 with a message (KV cache full, arena). */
int qt_task_complete(qt_kv_cache *kv, qt_sampler *s, data_rng *rng, const float *first_logits,
                     int max_new, int32_t *out, int *n, bool *terminated, float *logits, char *err,
                     size_t errlen);

/* Exact-match accuracy over the held-out set with greedy decoding, at the model's current quant
 * (m->quant): the fraction of problems whose completion parses to exactly the answer. Allocates
 * its own KV cache. Returns 0, or -1 with a message. */
int qt_task_accuracy(const qt_task *t, qt_model *m, double *accuracy, char *err, size_t errlen);

#endif
