/* opt.h — the public face of qat's optimizers: AdamW and SGD with momentum, learning-rate
 * schedules, global gradient-norm clipping, and optimizer state exposed as named tensors for
 * checkpoints.
 *
 * Memory: opt_create allocates every state buffer once (64-byte aligned); opt_step, opt_zero_grad,
 * opt_grad_norm, opt_clip_grad_norm and opt_schedule_lr never allocate and cannot fail. Parameters
 * and gradients stay owned by the caller (the model); the optimizer only keeps pointers to them.
 *
 * Determinism: every update is elementwise, so its result does not depend on the thread count. The
 * gradient norm sums fixed 4096-element chunks in double and combines the chunk sums in chunk
 * order, so it is bit-identical run to run and across thread counts.
 *
 * Semantics follow PyTorch (torch.optim.AdamW, torch.optim.SGD without dampening or Nesterov,
 * torch.nn.utils.clip_grad_norm_) so that runs can be compared with a PyTorch reference. */
#ifndef QAT_OPTIM_OPT_H
#define QAT_OPTIM_OPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- parameters ----------------------------------------------------------------------------- */

/* One trainable tensor, described by the caller; every pointer stays owned by the caller. */
typedef struct opt_param {
    const char *name; /* "h.0.attn.wq"; unique; names the state tensors "NAME/m", "NAME/v" */
    float *data;      /* [numel] */
    float *grad;      /* [numel]; read-only for the optimizer (weight decay never touches it) */
    size_t numel;
    bool decay; /* weight decay applies (false for norms, biases, embeddings: caller decides) */
} opt_param;

/* grad[i] = 0 for every parameter (grads with a NULL pointer are skipped). */
void opt_zero_grad(const opt_param *params, size_t n);

/* ---- optimizers ----------------------------------------------------------------------------- */

/* Values equal those of qt_optimizer in train/io/config.h: a cast converts one to the other. */
typedef enum { OPT_ADAMW = 0, OPT_SGD, OPT_KIND_COUNT } opt_kind;

const char *opt_kind_name(opt_kind k); /* "adamw" | "sgd" | "unknown" */

typedef struct opt_config {
    opt_kind kind;
    double beta1, beta2; /* AdamW: in [0, 1) */
    double eps;          /* AdamW: > 0 (added to √v̂) */
    double weight_decay; /* >= 0. AdamW: decoupled, p -= lr·wd·p. SGD: coupled, g += wd·p */
    double momentum;     /* SGD: in [0, 1); 0 = plain SGD, which keeps no state */
} opt_config;

/* PyTorch's defaults: AdamW beta1 0.9, beta2 0.999, eps 1e-8, weight_decay 0.01; SGD momentum 0,
 * weight_decay 0. Fields that do not apply to `kind` are still set to those values. */
opt_config opt_config_defaults(opt_kind kind);

typedef struct opt_optimizer opt_optimizer;

/* Allocate zeroed state for `n` parameters, step counter 0. The optimizer KEEPS the pointer
 * `params` (not a copy): the caller's array and every name, data and grad in it must outlive the
 * optimizer and keep their numel. Returns NULL with a message in err (bad hyperparameter, NULL or
 * empty or duplicate name, NULL data/grad, out of memory). */
opt_optimizer *opt_create(const opt_config *cfg, const opt_param *params, size_t n, char *err,
                          size_t errlen);
void opt_free(opt_optimizer *o); /* NULL is a no-op */

/* One update of every parameter from its grad with learning rate lr, then the step counter
 * increments. AdamW at step t = opt_get_step()+1:
 *   p -= lr·wd·p (if decay);  m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g²;
 *   p -= lr · (m / (1−β1^t)) / (√(v / (1−β2^t)) + eps)
 * SGD: g' = g + wd·p (if decay);  if momentum > 0: buf = g' on the first step (counter 0), else
 *   buf = μ·buf + g';  p -= lr·buf  (p -= lr·g' without momentum). */
void opt_step(opt_optimizer *o, double lr);

const opt_config *opt_get_config(const opt_optimizer *o);
/* Number of updates applied (the t of the last update). Saved in checkpoints as /optim step. */
int64_t opt_get_step(const opt_optimizer *o);
void opt_set_step(opt_optimizer *o, int64_t t); /* t < 0 is taken as 0 */

/* ---- optimizer state as named tensors --------------------------------------------------------
 * AdamW: for each parameter in order, "NAME/m" (first moment) then "NAME/v" (second moment).
 * SGD with momentum: "NAME/m" (momentum buffer) per parameter. Plain SGD: none.
 * To checkpoint, save every state tensor and opt_get_step; to restore, copy each saved tensor in
 * (opt_state_load, or memcpy into opt_state_at(o, i)->data) and call opt_set_step. */

typedef struct opt_state {
    const char *name; /* "NAME/m" or "NAME/v"; owned by the optimizer */
    float *data;      /* [numel], owned by the optimizer; writable to restore a checkpoint */
    size_t numel;     /* equals the parameter's numel */
} opt_state;

size_t opt_state_count(const opt_optimizer *o);
const opt_state *opt_state_at(const opt_optimizer *o, size_t i); /* NULL if i >= count */
/* Copy `numel` floats into the state tensor called `name`. Returns 0, or -1 with a message when no
 * state tensor has that name or its size differs. */
int opt_state_load(opt_optimizer *o, const char *name, const float *data, size_t numel, char *err,
                   size_t errlen);

/* ---- learning-rate schedules ---------------------------------------------------------------- */

/* Values equal those of qt_schedule in train/io/config.h. */
typedef enum { OPT_SCHED_COSINE = 0, OPT_SCHED_LINEAR, OPT_SCHED_CONSTANT } opt_schedule;

const char *opt_schedule_name(opt_schedule s); /* "cosine" | "linear" | "constant" | "unknown" */

/* Learning rate for 0-based `step` of a run of `total_steps` steps:
 *   step < warmup:  lr·(step+1)/warmup  (reaches lr at step warmup−1);
 *   afterwards:     CONSTANT lr; COSINE from lr at step `warmup` to min_lr at step total_steps−1
 *                   along half a cosine; LINEAR the same along a straight line; min_lr after that.
 * When no step is left to decay over (warmup >= total_steps−1, e.g. total_steps 1), the rate
 * stays at lr after warm-up. Out-of-range arguments are clamped: step and warmup to >= 0,
 * total_steps to >= 1; an unknown kind behaves as CONSTANT. */
double opt_schedule_lr(opt_schedule kind, double lr, double min_lr, int64_t warmup,
                       int64_t total_steps, int64_t step);

/* ---- gradient clipping ---------------------------------------------------------------------- */

/* Global L2 norm of all gradients (√Σg², accumulated in double; NULL grads skipped). NaN if any
 * gradient is NaN, else +Inf if any is infinite. Deterministic as described at the top. */
double opt_grad_norm(const opt_param *params, size_t n);

/* Returns the pre-clip global norm. When max_norm > 0 and the norm is finite and > max_norm, every
 * gradient is scaled by max_norm/(norm + 1e-6). A non-finite norm scales nothing: the caller should
 * stop (exit code 5) rather than step. max_norm <= 0 disables clipping. */
double opt_clip_grad_norm(const opt_param *params, size_t n, double max_norm);

#endif
