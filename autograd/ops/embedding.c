/* embedding.c — token embedding lookup out[b,t,:] = table[ids[b*T+t],:] and its scatter-add
 * gradient. The ids are copied into the arena so the caller's buffer may change before backward. */
#include <string.h>

#include "autograd/ops/fastmath.h"
#include "autograd/ops/ops.h"

/* The kernels, once per precision (the include order matters, so no sorting). */
/* clang-format off */
#define AG_REAL_F32
#include "autograd/ops/real_begin.h"
#include "autograd/ops/embedding.inc"
#include "autograd/ops/real_end.h"
#define AG_REAL_F64
#include "autograd/ops/real_begin.h"
#include "autograd/ops/embedding.inc"
#include "autograd/ops/real_end.h"
/* clang-format on */

ag_tensor *ag_embedding(ag_tape *t, ag_tensor *table, const int32_t *ids, int64_t B, int64_t T) {
    ag_tensor *in[1] = {table};
    if (!table || table->ndim != 2 || B < 0 || T < 0 || (T > 0 && B > INT64_MAX / T) ||
        (B * T > 0 && !ids))
        return NULL;
    /* table is (V,C), ids is (B*T), out is (B,T,C) */
    int64_t V = table->shape[0], C = table->shape[1];
    size_t N = (size_t)(B * T);
    for (size_t i = 0; i < N; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return NULL;
    ag_tensor *out = ag_op_output(t, table->dtype, 3, (int64_t[3]){B, T, C}, in, 1);
    if (!out)
        return NULL;
    int32_t *saved = NULL;
    if (ag_tape_recording(t) && out->requires_grad) {
        saved = ag_tape_alloc(t, N * sizeof *saved);
        if (!saved)
            return NULL;
        if (N)
            memcpy(saved, ids, N * sizeof *saved);
    }
    if (table->dtype == AG_F32)
        embedding_forward_f32(table->data, ids, out->data, N, (size_t)C);
    else
        embedding_forward_f64(table->data, ids, out->data, N, (size_t)C);
    ag_node *n = ag_record(t, AG_OP_EMBEDDING, out, in, 1);
    if (n)
        n->ctx = saved;
    return out;
}

void ag_embedding_backward(ag_node *n) {
    ag_tensor *table = n->in[0], *out = n->out;
    if (!table->requires_grad)
        return;
    size_t N = (size_t)(out->shape[0] * out->shape[1]), C = (size_t)out->shape[2];
    if (table->dtype == AG_F32)
        embedding_backward_f32(out->grad, n->ctx, table->grad, N, C);
    else
        embedding_backward_f64(out->grad, n->ctx, table->grad, N, C);
}
