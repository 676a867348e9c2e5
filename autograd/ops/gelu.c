/* gelu.c — GELU, tanh form: y = 0.5·x·(1 + tanh(u)), u = √(2/π)(x + 0.044715x³), evaluated
 * through the identity 0.5·(1 + tanh(u)) = σ(2u) = 1/(1 + exp(−2u)). Same function, but in float
 * 1 + tanh(u) cancels for x < 0 (measured: relative error reaching 100% below x ≈ −5 even with a
 * correctly rounded tanh), while x/(1 + exp(−2u)) stays within a few ulp; it is also one exp and
 * one division instead of a tanh. The float kernels use the vectorizable ag_expf_fast, the double
 * kernels (gradient checks) libm's exp. */
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
    if (x->dtype == AG_F32)
        gelu_forward_f32(x->data, y->data, x->numel);
    else
        gelu_forward_f64(x->data, y->data, x->numel);
    ag_record(t, AG_OP_GELU, y, in, 1);
    return y;
}

void ag_gelu_backward(ag_node *n) {
    ag_tensor *x = n->in[0], *y = n->out;
    if (!x->requires_grad)
        return;
    if (x->dtype == AG_F32)
        gelu_backward_f32(x->data, y->grad, x->grad, x->numel);
    else
        gelu_backward_f64(x->data, y->grad, x->grad, x->numel);
}
