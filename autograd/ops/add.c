/* add.c — y = a + b, where b has a's shape or a's trailing dims (bias [C] or positions [T,C]
 * onto [B,T,C]). The broadcast gradient sums over the leading repeats deterministically. */
#include "autograd/ops/fastmath.h"
#include "autograd/ops/ops.h"

/* The kernels, once per precision (the include order matters, so no sorting). */
/* clang-format off */
#define AG_REAL_F32
#include "autograd/ops/real_begin.h"
#include "autograd/ops/add.inc"
#include "autograd/ops/real_end.h"
#define AG_REAL_F64
#include "autograd/ops/real_begin.h"
#include "autograd/ops/add.inc"
#include "autograd/ops/real_end.h"
/* clang-format on */

/* True when b's shape equals the last b->ndim dims of a's. */
static bool is_trailing_shape(const ag_tensor *a, const ag_tensor *b) {
    if (b->ndim > a->ndim)
        return false;
    for (int d = 0; d < b->ndim; d++)
        if (b->shape[d] != a->shape[a->ndim - b->ndim + d])
            return false;
    return true;
}

ag_tensor *ag_add(ag_tape *t, ag_tensor *a, ag_tensor *b) {
    ag_tensor *in[2] = {a, b};
    if (!a || !b || a->dtype != b->dtype || !is_trailing_shape(a, b))
        return NULL;
    ag_tensor *y = ag_op_output(t, a->dtype, a->ndim, a->shape, in, 2);
    if (!y)
        return NULL;
    /* a and y are (R,P), b is (P); R = 1 (same numel) is the plain elementwise case. */
    size_t P = b->numel, R = P ? a->numel / P : 0;
    if (a->dtype == AG_F32) {
        if (R == 1)
            add_same_f32(a->data, b->data, y->data, P);
        else
            add_rows_f32(a->data, b->data, y->data, R, P);
    } else {
        if (R == 1)
            add_same_f64(a->data, b->data, y->data, P);
        else
            add_rows_f64(a->data, b->data, y->data, R, P);
    }
    ag_record(t, AG_OP_ADD, y, in, 2);
    return y;
}

void ag_add_backward(ag_node *n) {
    ag_tensor *a = n->in[0], *b = n->in[1], *y = n->out;
    size_t P = b->numel, R = P ? a->numel / P : 0;
    bool f32 = y->dtype == AG_F32, as_a = n->assign & 1u, as_b = n->assign & 2u;
    if (a->requires_grad) {
        if (f32)
            add_acc_f32(a->grad, y->grad, a->numel, as_a);
        else
            add_acc_f64(a->grad, y->grad, a->numel, as_a);
    }
    if (b->requires_grad) {
        if (R == 1) {
            if (f32)
                add_acc_f32(b->grad, y->grad, P, as_b);
            else
                add_acc_f64(b->grad, y->grad, P, as_b);
        } else {
            if (f32)
                add_rows_backward_f32(y->grad, b->grad, R, P, as_b);
            else
                add_rows_backward_f64(y->grad, b->grad, R, P, as_b);
        }
    }
}
