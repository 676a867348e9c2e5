/* Temporary: backward stubs until the basic ops land. Delete this file when they do. */
#include "autograd/ops/ops.h"
void ag_matmul_backward(ag_node *n) { (void)n; }
void ag_linear_backward(ag_node *n) { (void)n; }
void ag_add_backward(ag_node *n) { (void)n; }
void ag_mul_backward(ag_node *n) { (void)n; }
void ag_gelu_backward(ag_node *n) { (void)n; }
void ag_embedding_backward(ag_node *n) { (void)n; }
void ag_cross_entropy_backward(ag_node *n) { (void)n; }
