/* table.c — the op table: name and backward of every op, indexed by ag_op. */
#include "autograd/ops/ops.h"

#include <assert.h>

/* assign: inputs whose gradient the backward can write with = when it is the first writer (a
 * whole-buffer write), which saves zero-filling that buffer. */
static const struct {
    const char *name;
    ag_backward_fn backward;
    unsigned assign;
} op_table[] = {
    [AG_OP_MATMUL] = {"matmul", ag_matmul_backward},
    [AG_OP_LINEAR] = {"linear", ag_linear_backward, 1u << 0},
    [AG_OP_ADD] = {"add", ag_add_backward, 3u},
    [AG_OP_MUL] = {"mul", ag_mul_backward},
    [AG_OP_SCALE] = {"scale", ag_scale_backward},
    [AG_OP_GELU] = {"gelu", ag_gelu_backward, 1u << 0},
    [AG_OP_LAYERNORM] = {"layernorm", ag_layernorm_backward},
    [AG_OP_RMSNORM] = {"rmsnorm", ag_rmsnorm_backward},
    [AG_OP_EMBEDDING] = {"embedding", ag_embedding_backward},
    [AG_OP_ROPE] = {"rope", ag_rope_backward, 1u},
    [AG_OP_ATTENTION] = {"attention", ag_attention_backward, 7u},
    [AG_OP_CROSS_ENTROPY] = {"cross_entropy", ag_cross_entropy_backward, 1u},
    [AG_OP_FAKEQUANT] = {"fakequant", ag_fakequant_backward},
    [AG_OP_CLINEAR] = {"clinear", ag_clinear_backward},
    [AG_OP_FROZEN_LINEAR] = {"frozen_linear", ag_frozen_linear_backward},
    [AG_OP_DROPOUT] = {"dropout", ag_dropout_backward},
    [AG_OP_LORA_LINEAR] = {"lora_linear", ag_lora_linear_backward},
    [AG_OP_GRPO_LOSS] = {"grpo_loss", ag_grpo_loss_backward},
};
static_assert(sizeof op_table / sizeof op_table[0] == AG_OP_COUNT,
              "op table out of step with ag_op");

const char *ag_op_name(ag_op op) { return op < AG_OP_COUNT ? op_table[op].name : "?"; }
ag_backward_fn ag_op_backward(ag_op op) { return op_table[op].backward; }
unsigned ag_op_assign_inputs(ag_op op) { return op < AG_OP_COUNT ? op_table[op].assign : 0; }

bool ag_dtypes_match(ag_tensor *a, ag_tensor **others, int n) {
    for (int i = 0; i < n; i++)
        if (others[i] && others[i]->dtype != a->dtype)
            return false;
    return true;
}
