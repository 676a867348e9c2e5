/* cross_entropy.c — fused log-softmax + negative log-likelihood over the rows of logits [N,V]
 * (or [B,T,V]), averaged over rows whose target is not ignored (< 0). Forward saves only the
 * per-row max and log-sum-exp; backward recomputes the softmax from them. */
#include <string.h>

#include "autograd/ops/fastmath.h"
#include "autograd/ops/ops.h"

/* The kernels, once per precision (the include order matters, so no sorting). */
/* clang-format off */
#define AG_REAL_F32
#include "autograd/ops/real_begin.h"
#include "autograd/ops/cross_entropy.inc"
#include "autograd/ops/real_end.h"
#define AG_REAL_F64
#include "autograd/ops/real_begin.h"
#include "autograd/ops/cross_entropy.inc"
#include "autograd/ops/real_end.h"
/* clang-format on */

/* What backward needs beyond the logits (all in the arena). */
typedef struct ce_ctx {
    int32_t *targets; /* (N) copy of the caller's targets */
    void *mx, *ls;    /* (N) REAL each: row max and log Σ exp(x − max) */
    size_t n_valid;
} ce_ctx;

ag_tensor *ag_cross_entropy(ag_tape *t, ag_tensor *logits, const int32_t *targets) {
    ag_tensor *in[1] = {logits};
    if (!logits || logits->ndim < 1)
        return NULL;
    /* logits is (N,V) with N the product of the leading dims; targets is (N) */
    size_t V = (size_t)logits->shape[logits->ndim - 1], N = 1;
    for (int d = 0; d + 1 < logits->ndim; d++)
        N *= (size_t)logits->shape[d];
    if (N > 0 && !targets)
        return NULL;
    size_t n_valid = 0;
    for (size_t r = 0; r < N; r++) {
        if (targets[r] >= 0 && (size_t)targets[r] >= V)
            return NULL;
        n_valid += targets[r] >= 0;
    }
    ag_tensor *loss = ag_op_output(t, logits->dtype, 0, NULL, in, 1); /* scalar */
    if (!loss)
        return NULL;
    size_t es = ag_dtype_size(logits->dtype);
    /* mx, ls are scratch for the loss even when nothing is recorded. */
    void *mx = ag_tape_alloc(t, N * es), *ls = ag_tape_alloc(t, N * es);
    if (!mx || !ls)
        return NULL;
    ce_ctx *ctx = NULL;
    const int32_t *tg = targets;
    if (ag_tape_recording(t) && loss->requires_grad) {
        ctx = ag_tape_alloc(t, sizeof *ctx);
        int32_t *copy = ag_tape_alloc(t, N * sizeof *copy);
        if (!ctx || !copy)
            return NULL;
        if (N)
            memcpy(copy, targets, N * sizeof *copy);
        *ctx = (ce_ctx){.targets = copy, .mx = mx, .ls = ls, .n_valid = n_valid};
        tg = copy;
    }
    if (logits->dtype == AG_F32) {
        ce_forward_rows_f32(logits->data, tg, mx, ls, N, V);
        *(float *)loss->data = (float)ce_loss_f32(logits->data, tg, mx, ls, N, V, n_valid);
    } else {
        ce_forward_rows_f64(logits->data, tg, mx, ls, N, V);
        *(double *)loss->data = ce_loss_f64(logits->data, tg, mx, ls, N, V, n_valid);
    }
    ag_node *n = ag_record(t, AG_OP_CROSS_ENTROPY, loss, in, 1);
    if (n)
        n->ctx = ctx;
    return loss;
}

void ag_cross_entropy_backward(ag_node *n) {
    ag_tensor *x = n->in[0], *loss = n->out;
    const ce_ctx *c = n->ctx;
    bool assign = n->assign & 1u;
    if (!x->requires_grad)
        return;
    if (c->n_valid == 0) { /* a zero gradient: only an assigned buffer needs writing */
        if (assign)
            memset(x->grad, 0, x->numel * ag_dtype_size(x->dtype));
        return;
    }
    size_t V = (size_t)x->shape[x->ndim - 1], N = x->numel / V; /* n_valid > 0 implies V > 0 */
    if (x->dtype == AG_F32) {
        float g = (float)((double)*(float *)loss->grad / (double)c->n_valid);
        ce_backward_rows_f32(x->data, c->targets, c->mx, c->ls, g, x->grad, N, V, assign);
    } else {
        double g = *(double *)loss->grad / (double)c->n_valid;
        ce_backward_rows_f64(x->data, c->targets, c->mx, c->ls, g, x->grad, N, V, assign);
    }
}
