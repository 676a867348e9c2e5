/* ops.h — internal to autograd/: what op files share (backward entry points, dtype dispatch). */
#ifndef QAT_AUTOGRAD_OPS_H
#define QAT_AUTOGRAD_OPS_H

#include "autograd/ag.h"

/* One backward per op, referenced by the op table in table.c. Backward functions accumulate into
 * the grads of inputs that require them and never allocate. */
void ag_matmul_backward(ag_node *n);
void ag_linear_backward(ag_node *n);
void ag_add_backward(ag_node *n);
void ag_mul_backward(ag_node *n);
void ag_scale_backward(ag_node *n);
void ag_gelu_backward(ag_node *n);
void ag_layernorm_backward(ag_node *n);
void ag_rmsnorm_backward(ag_node *n);
void ag_embedding_backward(ag_node *n);
void ag_rope_backward(ag_node *n);
void ag_attention_backward(ag_node *n);
void ag_cross_entropy_backward(ag_node *n);
void ag_fakequant_backward(ag_node *n);
void ag_clinear_backward(ag_node *n);
void ag_frozen_linear_backward(ag_node *n);
void ag_dropout_backward(ag_node *n);

/* True when every non-NULL tensor among the first n shares a's dtype. */
bool ag_dtypes_match(ag_tensor *a, ag_tensor **others, int n);

#endif
