/* matmul.c — c = op(a)·op(b) for 2-D tensors, through BLAS gemm in both directions. */
#include <cblas.h>
#include <limits.h>
#include <string.h>

#include "autograd/ops/fastmath.h"
#include "autograd/ops/ops.h"

/* The kernels, once per precision (the include order matters, so no sorting). */
/* clang-format off */
#define AG_REAL_F32
#include "autograd/ops/real_begin.h"
#include "autograd/ops/matmul.inc"
#include "autograd/ops/real_end.h"
#define AG_REAL_F64
#include "autograd/ops/real_begin.h"
#include "autograd/ops/matmul.inc"
#include "autograd/ops/real_end.h"
/* clang-format on */

ag_tensor *ag_matmul(ag_tape *t, ag_tensor *a, ag_tensor *b, bool trans_a, bool trans_b) {
    ag_tensor *in[2] = {a, b};
    if (!a || !b || a->ndim != 2 || b->ndim != 2 || a->dtype != b->dtype)
        return NULL;
    /* a is [M,K] ([K,M] if trans_a), b is [K,N] ([N,K] if trans_b) */
    int64_t M = a->shape[trans_a ? 1 : 0], Kd = a->shape[trans_a ? 0 : 1];
    int64_t Kb = b->shape[trans_b ? 1 : 0], N = b->shape[trans_b ? 0 : 1];
    if (Kd != Kb || M > INT_MAX || N > INT_MAX || Kd > INT_MAX) /* BLAS takes int dims */
        return NULL;
    ag_tensor *c = ag_op_output(t, a->dtype, 2, (int64_t[2]){M, N}, in, 2); /* c is (M,N) */
    if (!c)
        return NULL;
    if (a->dtype == AG_F32)
        matmul_gemm_f32(trans_a, trans_b, M, N, Kd, a->data, b->data, 0, c->data);
    else
        matmul_gemm_f64(trans_a, trans_b, M, N, Kd, a->data, b->data, 0, c->data);
    ag_node *n = ag_record(t, AG_OP_MATMUL, c, in, 2);
    if (n) {
        n->i[0] = trans_a;
        n->i[1] = trans_b;
        n->i[2] = Kd;
    }
    return c;
}

void ag_matmul_backward(ag_node *n) {
    ag_tensor *a = n->in[0], *b = n->in[1], *c = n->out;
    bool ta = n->i[0] != 0, tb = n->i[1] != 0;
    int64_t M = c->shape[0], N = c->shape[1], Kd = n->i[2];
    void *da = a->requires_grad ? a->grad : NULL, *db = b->requires_grad ? b->grad : NULL;
    if (c->dtype == AG_F32)
        matmul_backward_f32(ta, tb, M, N, Kd, a->data, b->data, c->grad, da, db);
    else
        matmul_backward_f64(ta, tb, M, N, Kd, a->data, b->data, c->grad, da, db);
}
