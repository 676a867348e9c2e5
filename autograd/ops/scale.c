/* scale.c — y = s·x. Also the smallest example of how an op file is laid out: kernels in scale.inc
 * (instantiated for float and double), then forward and backward side by side. */
#include "autograd/ops/fastmath.h"
#include "autograd/ops/ops.h"

#define AG_REAL_F32
#include "autograd/ops/real_begin.h"
#include "autograd/ops/scale.inc"
#include "autograd/ops/real_end.h"
#define AG_REAL_F64
#include "autograd/ops/real_begin.h"
#include "autograd/ops/scale.inc"
#include "autograd/ops/real_end.h"

ag_tensor *ag_scale(ag_tape *t, ag_tensor *a, double s) {
    ag_tensor *in[1] = {a};
    ag_tensor *y =
        ag_op_output(t, a ? a->dtype : AG_F32, a ? a->ndim : 0, a ? a->shape : NULL, in, 1);
    if (!y)
        return NULL;
    if (a->dtype == AG_F32)
        scale_acc_f32(a->data, y->data, a->numel, (float)s, 0);
    else
        scale_acc_f64(a->data, y->data, a->numel, s, 0);
    ag_node *n = ag_record(t, AG_OP_SCALE, y, in, 1);
    if (n)
        n->f[0] = s;
    return y;
}

void ag_scale_backward(ag_node *n) {
    ag_tensor *a = n->in[0], *y = n->out;
    if (!a->requires_grad)
        return;
    if (a->dtype == AG_F32)
        scale_acc_f32(y->grad, a->grad, a->numel, (float)n->f[0], 1);
    else
        scale_acc_f64(y->grad, a->grad, a->numel, n->f[0], 1);
}
