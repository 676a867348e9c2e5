/* grpo.c — the GRPO policy loss (clipped surrogate + k3 KL to a reference policy) as one fused
 * op over the logits, and ag_token_logprobs, the log-probs of targets it is built on.
 *
 * Why one op: composed from log_softmax, gather, exp, clamp, min and a masked mean, the loss
 * would keep several (R,V) tensors and their gradients in the arena. Here forward keeps the
 * per-row max and log-sum-exp and one double per token, dloss/dlogp; backward recomputes the
 * softmax. The rows (the O(R·V) part) run in parallel; the per-token terms and the reduction to
 * the scalar run on one thread in row order (O(R) exps), so the loss and the per-token weights do
 * not depend on the thread count. All per-token arithmetic is in double, also for f32 logits. */
#include <math.h>
#include <string.h>

#include "autograd/ops/fastmath.h"
#include "autograd/ops/ops.h"

/* The kernels, once per precision (the include order matters, so no sorting). */
/* clang-format off */
#define AG_REAL_F32
#include "autograd/ops/real_begin.h"
#include "autograd/ops/grpo.inc"
#include "autograd/ops/real_end.h"
#define AG_REAL_F64
#include "autograd/ops/real_begin.h"
#include "autograd/ops/grpo.inc"
#include "autograd/ops/real_end.h"
/* clang-format on */

/* What backward needs beyond the logits (arena). adv, old_logp, ref_logp are not kept: their
 * whole effect is folded into w by forward. */
typedef struct grpo_ctx {
    int32_t *targets; /* (R) copy of the caller's targets */
    void *mx, *ls;    /* (R) REAL each: row max and log Σ exp(x − max) */
    double *w;        /* (R) dloss/dlogp of each token, 0 for ignored ones */
} grpo_ctx;

/* One valid token's terms. */
typedef struct grpo_tok {
    double loss, dlogp; /* l_t and dl_t/dlogp_t */
    double ratio, kl;   /* kl only with ref_logp */
    int clip;           /* clipped branch selected: -1 below 1 − eps_low, +1 above 1 + eps_high */
} grpo_tok;

static grpo_tok grpo_token(double logp, double old, const double *ref, double A,
                           const ag_grpo_spec *s) {
    grpo_tok k = {.ratio = exp(logp - old)};
    double lo = 1 - s->eps_low, hi = 1 + s->eps_high;
    double cr = k.ratio < lo ? lo : (k.ratio > hi ? hi : k.ratio);
    double unclipped = k.ratio * A, clipped = cr * A;
    /* min(unclipped, clipped): a tie (ratio inside the range, or A = 0) and a NaN take the
     * unclipped branch, so the gradient flows (and a NaN reaches it); d(ratio·A)/dlogp = ratio·A */
    if (unclipped > clipped) {
        k.loss = -clipped;
        k.clip = k.ratio > 1 ? 1 : -1;
    } else {
        k.loss = -unclipped;
        k.dlogp = -unclipped;
    }
    if (ref) {
        double d = *ref - logp, e = exp(d);
        k.kl = e - d - 1;
        if (s->beta > 0) {
            k.loss += s->beta * k.kl;
            k.dlogp += s->beta * (1 - e);
        }
    }
    return k;
}

/* Valid tokens among the T rows of sequence i. */
static size_t grpo_seq_count(const int32_t *tg, size_t i, size_t T) {
    size_t n = 0;
    for (size_t t = 0; t < T; t++)
        n += tg[i * T + t] >= 0;
    return n;
}

/* dloss/dl_t for the tokens of a sequence with n valid tokens: the aggregation's weight. */
static double grpo_norm(const ag_grpo_spec *s, size_t n, size_t n_valid) {
    double N = (double)s->n_seq;
    switch (s->agg) {
    case AG_GRPO_SEQ_MEAN:
        return n ? 1.0 / (N * (double)n) : 0.0;
    case AG_GRPO_CONST_NORM:
        return 1.0 / (N * (double)s->max_len);
    default:
        return n_valid ? 1.0 / (double)n_valid : 0.0;
    }
}

/* The per-token terms and the loss, on one thread in row order. lw (R) holds logp on entry and
 * dloss/dlogp on return. Fills st (may be NULL). */
static double grpo_reduce(double *lw, const int32_t *tg, const ag_grpo_spec *s, size_t T,
                          size_t n_valid, ag_grpo_stats *st) {
    double loss = 0, kl = 0, ratio = 0;
    size_t lo = 0, hi = 0;
    const double *ref = s->beta > 0 || st ? s->ref_logp : NULL;
    for (size_t i = 0; i < (size_t)s->n_seq; i++) {
        double norm = grpo_norm(s, grpo_seq_count(tg, i, T), n_valid), seq = 0;
        for (size_t r = i * T; r < (i + 1) * T; r++) {
            if (tg[r] < 0) {
                lw[r] = 0;
                continue;
            }
            double old = s->old_logp ? s->old_logp[r] : lw[r];
            grpo_tok k = grpo_token(lw[r], old, ref ? ref + r : NULL, s->adv[i], s);
            seq += k.loss;
            lw[r] = k.dlogp * norm;
            kl += k.kl;
            ratio += k.ratio;
            lo += k.clip < 0;
            hi += k.clip > 0;
        }
        loss += seq * norm;
    }
    if (st) {
        double n = n_valid ? (double)n_valid : 1.0; /* no valid token: every mean is 0 */
        *st = (ag_grpo_stats){.kl_mean = kl / n,
                              .clip_frac = (double)(lo + hi) / n,
                              .clip_low_frac = (double)lo / n,
                              .clip_high_frac = (double)hi / n,
                              .ratio_mean = ratio / n,
                              .n_valid = (int64_t)n_valid};
    }
    return loss;
}

/* Rows R and vocabulary V of logits (R,V) or (N,T,V) when the targets are in range; 0 = bad. */
static bool grpo_rows(const ag_tensor *x, const int32_t *tg, size_t *R, size_t *V,
                      size_t *n_valid) {
    if (!x || x->ndim < 2 || x->ndim > 3 || x->shape[x->ndim - 1] < 1)
        return false;
    *V = ag_cols(x);
    *R = ag_rows(x);
    if (*R > 0 && !tg)
        return false;
    *n_valid = 0;
    for (size_t r = 0; r < *R; r++) {
        if (tg[r] >= 0 && (size_t)tg[r] >= *V)
            return false;
        *n_valid += tg[r] >= 0;
    }
    return true;
}

static bool grpo_spec_ok(const ag_grpo_spec *s, const ag_tensor *x, size_t R) {
    if (!s || !s->adv || s->n_seq < 1 || R % (size_t)s->n_seq != 0)
        return false;
    if (x->ndim == 3 && x->shape[0] != s->n_seq)
        return false;
    /* Written so that NaN fails too. */
    if (!(s->eps_low >= 0) || !(s->eps_high >= 0) || !(s->beta >= 0))
        return false;
    if (s->agg != AG_GRPO_SEQ_MEAN && s->agg != AG_GRPO_CONST_NORM && s->agg != AG_GRPO_TOKEN_MEAN)
        return false;
    return s->agg != AG_GRPO_CONST_NORM || s->max_len > 0;
}

int ag_token_logprobs(const ag_tensor *logits, const int32_t *targets, double *out) {
    size_t R, V, n_valid;
    if (!grpo_rows(logits, targets, &R, &V, &n_valid) || (R > 0 && !out))
        return -1;
    if (logits->dtype == AG_F32)
        grpo_logp_rows_f32(logits->data, targets, NULL, NULL, out, R, V);
    else
        grpo_logp_rows_f64(logits->data, targets, NULL, NULL, out, R, V);
    return 0;
}

ag_tensor *ag_grpo_loss(ag_tape *t, ag_tensor *logits, const int32_t *targets,
                        const ag_grpo_spec *spec, ag_grpo_stats *stats) {
    ag_tensor *in[1] = {logits};
    size_t R, V, n_valid;
    if (!grpo_rows(logits, targets, &R, &V, &n_valid) || !grpo_spec_ok(spec, logits, R))
        return NULL;
    ag_tensor *loss = ag_op_output(t, logits->dtype, 0, NULL, in, 1); /* scalar */
    if (!loss)
        return NULL;
    size_t es = ag_dtype_size(logits->dtype);
    /* mx, ls, w are scratch for the loss even when nothing is recorded. */
    void *mx = ag_tape_alloc(t, R * es), *ls = ag_tape_alloc(t, R * es);
    double *w = ag_tape_alloc(t, R * sizeof *w);
    if (!mx || !ls || !w)
        return NULL;
    grpo_ctx *ctx = NULL;
    if (ag_tape_recording(t) && loss->requires_grad) {
        ctx = ag_tape_alloc(t, sizeof *ctx);
        int32_t *copy = ag_tape_alloc(t, R * sizeof *copy);
        if (!ctx || !copy)
            return NULL;
        if (R)
            memcpy(copy, targets, R * sizeof *copy);
        *ctx = (grpo_ctx){.targets = copy, .mx = mx, .ls = ls, .w = w};
    }
    if (logits->dtype == AG_F32)
        grpo_logp_rows_f32(logits->data, targets, mx, ls, w, R, V);
    else
        grpo_logp_rows_f64(logits->data, targets, mx, ls, w, R, V);
    double l = grpo_reduce(w, targets, spec, R / (size_t)spec->n_seq, n_valid, stats);
    if (logits->dtype == AG_F32)
        *(float *)loss->data = (float)l;
    else
        *(double *)loss->data = l;
    ag_node *n = ag_record(t, AG_OP_GRPO_LOSS, loss, in, 1);
    if (n)
        n->ctx = ctx;
    return loss;
}

void ag_grpo_loss_backward(ag_node *n) {
    ag_tensor *x = n->in[0], *loss = n->out;
    const grpo_ctx *c = n->ctx;
    if (!x->requires_grad)
        return;
    size_t V = ag_cols(x), R = ag_rows(x);
    if (x->dtype == AG_F32)
        grpo_backward_rows_f32(x->data, c->targets, c->mx, c->ls, c->w,
                               (double)*(float *)loss->grad, x->grad, R, V);
    else
        grpo_backward_rows_f64(x->data, c->targets, c->mx, c->ls, c->w, *(double *)loss->grad,
                               x->grad, R, V);
}
