/* dropout.c — inverted dropout with a stateless mask (LoRA dropout on the adapter input):
 * y = m ⊙ x / q, q = 1 − p rounded to x's dtype, m_i ∈ {0,1} kept with probability 1 − p.
 *
 * The mask is a pure function of (seed, i), i the flat index: the splitmix64 finalizer of
 * key + j·γ for the pair j = i/2 (key = the finalizer of the seed, so nearby seeds give unrelated
 * masks; γ the golden-ratio increment, as in splitmix64 itself, whose output this is for the
 * stream starting at key). So the mask needs no storage (backward regenerates it, the tape keeps
 * only p and the seed), does not depend on the thread count or on how the loop is cut, and is the
 * same for float and double. Element i is kept when its 32-bit half of the hash is below
 * thr = round((1 − p)·2³²), at most 2³² − 1: keep probability thr/2³², within 2⁻³² of 1 − p.
 * One 64-bit hash per pair of elements: the 64-bit multiplies are most
 * of the cost on AVX2 (no vector 64-bit multiply), and halving them measured 35% faster than one
 * hash per element. The mask kernel (ag_drop_apply_*, ops.h) takes any stretch of the index
 * space, so lora_linear.c regenerates this very mask block by block inside its own fused node. */
#include <stdbool.h>
#include <string.h>

#include "autograd/ops/ops.h"

/* Below this many elements the op runs on one thread: a team costs more than the pass. */
#define AG_DROPOUT_PAR_MIN 32768
/* Threads share the tensor in chunks of this many elements (even: no pair is cut). */
#define AG_DROPOUT_CHUNK ((size_t)8192)

#define AG_DROPOUT_GAMMA 0x9E3779B97F4A7C15ull /* splitmix64's increment: 2⁶⁴/φ, odd */

/* The splitmix64 finalizer (Stafford's mix13): a bijection of 64-bit words with full avalanche. */
static inline uint64_t drop_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The 64 mask bits of the element pair j (elements 2j, 2j+1). */
static inline uint64_t drop_hash(uint64_t key, size_t j) {
    return drop_mix(key + (uint64_t)j * AG_DROPOUT_GAMMA);
}

/* The kernels, once per precision (the include order matters, so no sorting). */
/* clang-format off */
#define AG_REAL_F32
#include "autograd/ops/real_begin.h"
#include "autograd/ops/dropout.inc"
#include "autograd/ops/real_end.h"
#define AG_REAL_F64
#include "autograd/ops/real_begin.h"
#include "autograd/ops/dropout.inc"
#include "autograd/ops/real_end.h"
/* clang-format on */

/* Keep threshold for a 32-bit uniform word: round((1 − p)·2³²), at most 2³² − 1 (p in (0, 1)). */
static uint32_t drop_threshold(double p) {
    double thr = (1.0 - p) * 4294967296.0 + 0.5;
    return thr >= 4294967295.0 ? UINT32_MAX : (uint32_t)thr;
}

ag_drop_mask ag_drop_mask_of(double p, uint64_t seed) {
    return (ag_drop_mask){.key = drop_mix(seed), .thr = drop_threshold(p), .p = p};
}

static void drop_run(const ag_tensor *x, const void *src, void *dst, double p, uint64_t seed,
                     bool accumulate) {
    ag_drop_mask m = ag_drop_mask_of(p, seed);
    if (x->dtype == AG_F32)
        dropout_apply_f32(src, dst, x->numel, &m, accumulate);
    else
        dropout_apply_f64(src, dst, x->numel, &m, accumulate);
}

ag_tensor *ag_dropout(ag_tape *t, ag_tensor *x, double p, uint64_t seed) {
    if (!x || !(p >= 0.0 && p < 1.0)) /* also rejects NaN */
        return NULL;
    /* Identity: return x itself, as ag_fakequant does for fp32; the caller gets no new tensor,
     * and gradients flow straight into x. */
    if (p == 0.0 || !ag_tape_recording(t))
        return x;
    ag_tensor *in[1] = {x};
    ag_tensor *y = ag_op_output(t, x->dtype, x->ndim, x->shape, in, 1);
    if (!y)
        return NULL;
    drop_run(x, x->data, y->data, p, seed, false);
    ag_node *n = ag_record(t, AG_OP_DROPOUT, y, in, 1);
    if (n) {
        n->f[0] = p;
        memcpy(&n->i[0], &seed, sizeof seed); /* all 64 bits, no signed conversion */
    }
    return y;
}

void ag_dropout_backward(ag_node *n) {
    ag_tensor *x = n->in[0], *y = n->out;
    if (!x->requires_grad)
        return;
    uint64_t seed;
    memcpy(&seed, &n->i[0], sizeof seed);
    drop_run(x, y->grad, x->grad, n->f[0], seed, true);
}
