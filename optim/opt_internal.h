/* opt_internal.h — what the optim/ source files share and nobody else sees: the optimizer struct
 * and the per-tensor update kernels. */
#ifndef QAT_OPTIM_OPT_INTERNAL_H
#define QAT_OPTIM_OPT_INTERNAL_H

#include "optim/opt.h"

/* Below this many elements a loop runs on one thread: starting a parallel region costs more than
 * the work (biases and norm weights are a few hundred elements). */
#define OPT_PAR_MIN 16384

struct opt_optimizer {
    opt_config cfg;
    const opt_param *params; /* the caller's array (kept, not copied) */
    size_t n_params;
    int64_t step;
    opt_state *states; /* [n_states]; AdamW: 2 per parameter (m, v), SGD with momentum: 1 */
    size_t n_states, states_per_param;
    char *names;   /* every state name, NUL-separated, one allocation */
    float *buffer; /* every state tensor, each 64-byte aligned, one allocation */
};

/* AdamW on one tensor of n elements. one_minus_beta* are formed in double before rounding (1 −
 * 0.999f is off by 1.3e-5 relative); decay = 1 − lr·wd (1 when decay is off); step_size =
 * lr/(1−β1^t); bc2_sqrt = √(1−β2^t). */
typedef struct opt_adamw_coef {
    float beta1, one_minus_beta1, beta2, one_minus_beta2, decay, step_size, bc2_sqrt, eps;
} opt_adamw_coef;

void opt_adamw_update(float *restrict p, const float *restrict g, float *restrict m,
                      float *restrict v, size_t n, opt_adamw_coef c);

/* SGD on one tensor: g' = g + wd·p; buf = first ? g' : μ·buf + g'; p −= lr·buf. buf NULL = no
 * momentum (p −= lr·g'). */
void opt_sgd_update(float *restrict p, const float *restrict g, float *restrict buf, size_t n,
                    float lr, float wd, float momentum, bool first);

#endif
