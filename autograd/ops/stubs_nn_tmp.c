/* Temporary: backward stubs until the nn ops land. Delete this file when they do. */
#include "autograd/ops/ops.h"
void ag_layernorm_backward(ag_node *n) { (void)n; }
void ag_rmsnorm_backward(ag_node *n) { (void)n; }
void ag_rope_backward(ag_node *n) { (void)n; }
void ag_attention_backward(ag_node *n) { (void)n; }
