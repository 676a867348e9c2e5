/* grpo.h — internal to train/run: run.mode = grpo, Group Relative Policy Optimization on the
 * arithmetic task's exact-match reward (docs/GRPO.md).
 *
 * One step: the step's MX format is drawn (MF-QAT) and used for everything below; P prompts are
 * drawn (never from the held-out set) and G completions sampled for each through the KV cache;
 * rewards are scored, advantages A = (r − mean of the group) / std (of the group, of the batch,
 * or 1: grpo.scale_rewards); the sequences go through the model once more to get, when needed,
 * the reference log-probs (beta > 0: the starting weights, or the base with adapters off under
 * LoRA) and the old log-probs (iterations > 1); then `iterations` optimizer updates each minimise
 * ag_grpo_loss (clipped ratio, k3 KL, loss_type aggregation) over those same rollouts. */
#ifndef QAT_TRAIN_RUN_GRPO_H
#define QAT_TRAIN_RUN_GRPO_H

#include "train/run/session.h"

typedef struct qt_grpo_result {
    double loss, grad_norm, seconds;
    mx_format format;
    double reward_mean, reward_std; /* over the N = P·G completions */
    double kl, clip_frac;           /* token means, averaged over the iterations */
    double completion_len;          /* mean completion tokens */
    double truncated;               /* fraction of completions without the terminator */
} qt_grpo_result;

/* After init_from (the starting weights are the reference) and before a resume. Returns 0, or -1
 * with a message (memory). */
int qt_grpo_create(qt_session *s, char *err, size_t errlen);
void qt_grpo_free(qt_session *s);

/* Advantages of P groups of G rewards (group g = reward[g·G .. g·G+G)): adv = (r − the group's
 * mean) / d with d = the group's sample standard deviation + 1e-4 (group), the whole batch's +
 * 1e-4 (batch), or 1 (none); the 1e-4 makes a group of equal rewards 0 rather than 0/0. mean and
 * std (sample) of all P·G rewards go to *mean, *std. G >= 2. */
void qt_grpo_advantages(const double *reward, int P, int G, qt_grpo_scale scale, double *adv,
                        double *mean, double *std);

/* Positions of the policy batch: P·G rows of the longest prompt + max_new − 1 (padded). */
int64_t qt_grpo_tokens_per_step(const qt_session *s);

/* One GRPO step at learning rate lr (iterations optimizer updates); s->step advances by one.
 * Returns QT_EXIT_OK, QT_EXIT_NUMERIC (non-finite loss or gradient: that update was not applied)
 * or QT_EXIT_INTERNAL, after printing why. */
int qt_grpo_step(qt_session *s, double lr, qt_grpo_result *r);

#endif
