/* gelu.c — GELU, tanh form: y = 0.5·x·(1 + tanh(u)), u = √(2/π)(x + 0.044715x³), evaluated
 * through the identity 0.5·(1 + tanh(u)) = σ(2u) = 1/(1 + exp(−2u)). Same function, but in float
 * 1 + tanh(u) cancels for x < 0 (measured: relative error reaching 100% below x ≈ −5 even with a
 * correctly rounded tanh), while x/(1 + exp(−2u)) stays within a few ulp; it is also one exp and
 * one division instead of a tanh. The float kernels use the vectorizable ag_expf_fast, the double
 * kernels (gradient checks) libm's exp. When the op is recorded, the forward also saves gelu'(x) in
 * the step arena (numel elements), so the backward is a multiply-add: no second exp and division
 * (it was 8.9 ms/step of recomputation in docs/BENCH.md's breakdown). */
#include "autograd/ops/fastmath.h"
#include "autograd/ops/ops.h"

/* The kernels, once per precision (the include order matters, so no sorting). */
/* clang-format off */
#define AG_REAL_F32
#include "autograd/ops/real_begin.h"
#include "autograd/ops/gelu.inc"
#include "autograd/ops/real_end.h"
#define AG_REAL_F64
#include "autograd/ops/real_begin.h"
#include "autograd/ops/gelu.inc"
#include "autograd/ops/real_end.h"
/* clang-format on */

ag_tensor *ag_gelu(ag_tape *t, ag_tensor *x) {
    ag_tensor *in[1] = {x};
    if (!x)
        return NULL;
    ag_tensor *y = ag_op_output(t, x->dtype, x->ndim, x->shape, in, 1);
    if (!y)
        return NULL;
    /* d = gelu'(x) (numel), kept for backward only when this op is recorded. */
    bool save = ag_tape_recording(t) && y->requires_grad;
    void *d = save ? ag_tape_alloc(t, x->numel * ag_dtype_size(x->dtype)) : NULL;
    if (save && !d)
        return NULL;
    if (x->dtype == AG_F32) {
        if (d)
            gelu_forward_save_f32(x->data, y->data, d, x->numel);
        else
            gelu_forward_f32(x->data, y->data, x->numel);
    } else {
        if (d)
            gelu_forward_save_f64(x->data, y->data, d, x->numel);
        else
            gelu_forward_f64(x->data, y->data, x->numel);
    }
    if (save) {
        ag_node *n = ag_record(t, AG_OP_GELU, y, in, 1);
        if (!n)
            return NULL; /* tape full: ag_tape_error says so */
        n->ctx = d;
    }
    return y;
}

void ag_gelu_backward(ag_node *n) {
    ag_tensor *x = n->in[0], *y = n->out;
    if (!x->requires_grad)
        return;
    if (x->dtype == AG_F32)
        gelu_backward_f32(n->ctx, y->grad, x->grad, x->numel, n->assign & 1u);
    else
        gelu_backward_f64(n->ctx, y->grad, x->grad, x->numel, n->assign & 1u);
}
