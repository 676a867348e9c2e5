/* mul.c — y = a ⊙ b for tensors of the same shape. */
#include "autograd/ops/fastmath.h"
#include "autograd/ops/ops.h"

/* The kernels, once per precision (the include order matters, so no sorting). */
/* clang-format off */
#define AG_REAL_F32
#include "autograd/ops/real_begin.h"
#include "autograd/ops/mul.inc"
#include "autograd/ops/real_end.h"
#define AG_REAL_F64
#include "autograd/ops/real_begin.h"
#include "autograd/ops/mul.inc"
#include "autograd/ops/real_end.h"
/* clang-format on */

ag_tensor *ag_mul(ag_tape *t, ag_tensor *a, ag_tensor *b) {
    ag_tensor *in[2] = {a, b};
    if (!a || !b || a->dtype != b->dtype || !ag_same_shape(a, b))
        return NULL;
    ag_tensor *y = ag_op_output(t, a->dtype, a->ndim, a->shape, in, 2);
    if (!y)
        return NULL;
    if (a->dtype == AG_F32)
        mul_forward_f32(a->data, b->data, y->data, a->numel);
    else
        mul_forward_f64(a->data, b->data, y->data, a->numel);
    ag_record(t, AG_OP_MUL, y, in, 2);
    return y;
}

/* For mul(x, x) both branches accumulate into x->grad, giving 2x·dy as they should. */
void ag_mul_backward(ag_node *n) {
    ag_tensor *a = n->in[0], *b = n->in[1], *y = n->out;
    bool f32 = y->dtype == AG_F32;
    if (a->requires_grad) {
        if (f32)
            mul_backward_f32(y->grad, b->data, a->grad, a->numel);
        else
            mul_backward_f64(y->grad, b->data, a->grad, a->numel);
    }
    if (b->requires_grad) {
        if (f32)
            mul_backward_f32(y->grad, a->data, b->grad, b->numel);
        else
            mul_backward_f64(y->grad, a->data, b->grad, b->numel);
    }
}
