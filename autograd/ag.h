/* ag.h — the public face of qat's tape-based reverse-mode autograd.
 *
 * Memory has two lifetimes. Parameters (and their gradients) are owned by the caller (the model),
 * wrapped in ag_tensor structs it also owns. Everything an op creates — outputs, saved context,
 * tape nodes, gradient buffers of intermediate tensors — comes from the tape's step arena and dies
 * at ag_tape_reset(). Nothing in a step calls malloc once the arena has reached its steady-state
 * size.
 *
 * Every op returns NULL when the arena is exhausted (or when any input is NULL), so a whole forward
 * pass can be written without checks and tested once at the end: ag_tape_error() then says why.
 *
 * Tensors are float32 for training and float64 for gradient checks; every kernel is written once
 * and instantiated for both, so the double-precision finite-difference checks test the training
 * code.
 */
#ifndef QAT_AUTOGRAD_AG_H
#define QAT_AUTOGRAD_AG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quant/mx.h" /* the one way autograd meets quant: the fake-quantization op */

#define AG_MAX_DIMS 4
#define AG_MAX_INPUTS 4

typedef enum { AG_F32 = 0, AG_F64 = 1 } ag_dtype;

typedef struct ag_tensor {
    void *data; /* float* (AG_F32) or double* (AG_F64), contiguous row-major */
    void *grad; /* same dtype and shape; NULL until needed */
    ag_dtype dtype;
    int ndim;
    int64_t shape[AG_MAX_DIMS];
    size_t numel;
    bool requires_grad;
} ag_tensor;

/* ---- arena: bump allocator for one step ---------------------------------------------------- */

typedef struct ag_arena ag_arena;

/* `initial` bytes are reserved now; the arena grows past them only until the first reset after
 * growth, which consolidates into one block of the peak size (so steady-state steps never malloc).
 * `limit` caps the total (0 = no cap); exceeding it makes allocations fail with a recorded error.
 */
ag_arena *ag_arena_create(size_t initial, size_t limit);
void ag_arena_free(ag_arena *a);
void *ag_arena_alloc(ag_arena *a, size_t bytes);  /* 64-byte aligned, uninitialised; NULL if full */
void *ag_arena_calloc(ag_arena *a, size_t bytes); /* zeroed */
void ag_arena_reset(ag_arena *a);
size_t ag_arena_used(const ag_arena *a);
size_t ag_arena_peak(const ag_arena *a);
size_t ag_arena_capacity(const ag_arena *a);
size_t ag_arena_grow_count(const ag_arena *a); /* number of mallocs after creation (tests) */
const char *ag_arena_error(const ag_arena *a); /* "" when no allocation has failed since reset */

/* ---- ops ------------------------------------------------------------------------------------ */

typedef enum {
    AG_OP_MATMUL = 0,
    AG_OP_LINEAR,
    AG_OP_ADD,
    AG_OP_MUL,
    AG_OP_SCALE,
    AG_OP_GELU,
    AG_OP_LAYERNORM,
    AG_OP_RMSNORM,
    AG_OP_EMBEDDING,
    AG_OP_ROPE,
    AG_OP_ATTENTION,
    AG_OP_CROSS_ENTROPY,
    AG_OP_FAKEQUANT,
    AG_OP_CLINEAR,
    AG_OP_FROZEN_LINEAR,
    AG_OP_DROPOUT,
    AG_OP_LORA_LINEAR,
    AG_OP_GRPO_LOSS,
    AG_OP_COUNT
} ag_op;

const char *ag_op_name(ag_op op);

/* ---- tape ----------------------------------------------------------------------------------- */

typedef struct ag_node ag_node;
typedef void (*ag_backward_fn)(ag_node *n);

/* One recorded op. Small scalar arguments travel in f[]/i[]; larger saved state in ctx (arena). */
struct ag_node {
    ag_op op;
    ag_tensor *out;
    ag_tensor *in[AG_MAX_INPUTS];
    int n_in;
    double f[4];
    int64_t i[4];
    void *ctx;
    /* Set by ag_backward_prepare: bit j means this node's backward is the first to write
     * in[j]->grad, whose buffer was therefore not zero-filled, and must assign (=) rather than
     * accumulate (+=). Only ops whose table entry allows it for input j get the bit. */
    unsigned assign;
};

typedef struct ag_tape ag_tape;

/* The tape owns its arena. max_nodes bounds the number of recorded ops per step. */
ag_tape *ag_tape_create(size_t arena_initial, size_t arena_limit, size_t max_nodes);
void ag_tape_free(ag_tape *t);
void ag_tape_reset(ag_tape *t);                  /* forget all nodes, reset the arena */
void ag_tape_set_recording(ag_tape *t, bool on); /* off = inference: nothing saved */
bool ag_tape_recording(const ag_tape *t);
ag_arena *ag_tape_arena(ag_tape *t);
size_t ag_tape_size(const ag_tape *t);
const ag_node *ag_tape_node(const ag_tape *t, size_t i);
const char *ag_tape_error(const ag_tape *t); /* arena or node-capacity failure, "" if none */

/* Reverse pass from `out`. seed = d(loss)/d(out), same dtype and numel as out; NULL means 1 for
 * a scalar out. Gradients accumulate (+=) into every grad buffer reachable from out, so parameter
 * grads must be zeroed by the caller between steps. (Arena grads of intermediates are either
 * zero-filled or, where an op supports it, assigned by their first writer: see ag_node.assign.)
 * Returns 0, or -1 if arena allocation failed. */
int ag_backward(ag_tape *t, ag_tensor *out, const void *seed);
/* The first half of ag_backward, for callers that time or drive the nodes themselves: gives every
 * tensor reachable from out that requires grad and has none a zeroed arena buffer. 0 or -1. */
int ag_backward_prepare(ag_tape *t, ag_tensor *out);

/* ---- tensor helpers ------------------------------------------------------------------------- */

size_t ag_dtype_size(ag_dtype d);
/* Fill in a caller-owned tensor around caller-owned buffers (grad may be NULL). */
void ag_tensor_wrap(ag_tensor *t, ag_dtype d, void *data, void *grad, int ndim,
                    const int64_t *shape);
/* New arena tensor, data uninitialised, grad NULL, requires_grad false. */
ag_tensor *ag_tensor_new(ag_tape *t, ag_dtype d, int ndim, const int64_t *shape);
/* Ensure t->grad exists (arena, zeroed). Returns 0 or -1. */
int ag_tensor_ensure_grad(ag_tape *tape, ag_tensor *t);
bool ag_same_shape(const ag_tensor *a, const ag_tensor *b);
/* Product of all dims but the last, and the last dim. */
size_t ag_rows(const ag_tensor *t);
size_t ag_cols(const ag_tensor *t);

/* ---- differentiable ops (forward here, backward beside each in autograd/ops/) ----------------
 * Shapes use llm.c letters: B batch, T time, C channels, NH heads, V vocab. Tensors with more than
 * two dims are read as matrices [rows = product of leading dims, cols = last dim]. */

/* c = op(a)·op(b) for 2-D a,b: op(a) is [M,K], op(b) is [K,N]; c is [M,N]. */
ag_tensor *ag_matmul(ag_tape *t, ag_tensor *a, ag_tensor *b, bool trans_a, bool trans_b);
/* y[..., out] = x[..., in] · wᵀ with w [out, in] (PyTorch's nn.Linear without bias). */
ag_tensor *ag_linear(ag_tape *t, ag_tensor *x, ag_tensor *w);
/* Complex linear map (CRoPE attention's projections). x [..., d], d even, is read as d/2
 * complex numbers x̃_k = x[2k] + i·x[2k+1]; W̃ = a + i·b with a, b [D/2, d/2] (two real tensors:
 * half the parameters of ag_linear with w [D, d], same flops); y [..., D] holds ỹ = W̃·x̃
 * interleaved the same way: y_r = a·x_r − b·x_i, y_i = b·x_r + a·x_i. a and b are ordinary
 * tensors (e.g. fake-quantized parameters) and may be the same tensor. NULL if d is odd or a, b
 * are not both [D/2, d/2]. Results do not depend on the thread count. */
ag_tensor *ag_clinear(ag_tape *t, ag_tensor *x, ag_tensor *a, ag_tensor *b);
/* A frozen weight W [rows = out, cols = in] kept in whatever packed form its owner chose (NF4,
 * MX, ...): autograd only ever sees rows of it through dequant_rows. */
typedef struct ag_frozen {
    int64_t rows, cols; /* W is [rows = out, cols = in] */
    /* Dequantize rows [r0, r1) of W into out, row-major [r1 - r0, cols] float. Must be callable
     * concurrently for disjoint ranges (the op calls it from its own OpenMP threads, with
     * 0 <= r0 < r1 <= rows) and deterministic: the same row always gives the same floats. */
    void (*dequant_rows)(const void *ctx, int64_t r0, int64_t r1, float *out);
    const void *ctx;
} ag_frozen;
/* QLoRA's base layer: y[..., out] = x[..., in] · Wᵀ with W frozen (no gradient for W, ever; the
 * node's only input is x). W is never materialised: it is dequantized a tile of rows at a time
 * (256 rows, fewer when in > 4096) into at most two tiles of the tape's shared scratch
 * (ag_tape_shared: one buffer for all frozen layers of a step), independent of out and of the
 * thread count, and multiplied with gemm; backward computes dx only (dx += dy · W, dequantizing
 * the tiles again). AG_F64 x (gradient checks) widens the
 * dequantized floats to double. Results do not depend on the thread count. *w is copied, so it
 * may be a stack variable, but w->ctx (the packed data) is kept: it must stay alive and
 * unchanged until backward has run or the tape is reset, since backward calls dequant_rows
 * again. A node is recorded only when x requires grad. NULL if x's last dim is not w->cols,
 * w->rows or w->cols < 1, dequant_rows is NULL, or the arena is full. */
ag_tensor *ag_frozen_linear(ag_tape *t, ag_tensor *x, const ag_frozen *w);
/* Inverted dropout (LoRA dropout on the adapter input): y = x ⊙ m / (1 − p), computed as a
 * division by q = 1 − p rounded to x's dtype, so kept elements are exactly x/q and dropped ones
 * exactly +0. m_i ∈ {0,1} is Bernoulli(1 − p) from a counter-based hash of (seed, i), i the flat
 * element index: the mask is reproducible, independent of the thread count and of the dtype, and
 * is not stored (backward regenerates it: dx += dy ⊙ m / q). Callers give every call site and
 * step its own seed (e.g. drawn from the run's dropout RNG stream). p = 0, or a tape that is not
 * recording (inference), returns x itself: no copy, nothing recorded. NULL unless 0 <= p < 1.
 * Note that ag_gradcheck evaluates its numerical side with recording off, so a numerical check
 * through dropout must switch recording on in its build function. */
ag_tensor *ag_dropout(ag_tape *t, ag_tensor *x, double p, uint64_t seed);
/* QLoRA layer in one node: y = x·Wᵀ + s·(drop(x)·Aᵀ)·Bᵀ, W frozen packed (ag_frozen, tile by
 * tile as ag_frozen_linear), A [r, in], B [out, r] trainable, drop = ag_dropout's mask for
 * (p, seed) — p = 0 or a non-recording tape: no dropout. Saves only u = drop(x)·Aᵀ [R, r];
 * backward regenerates the mask. Gradients: dx (through W and the adapter), dA, dB.
 * It equals ag_add(ag_frozen_linear(x, w), ag_scale(ag_linear(ag_linear(ag_dropout(x, p, seed),
 * a), b), s)) up to rounding, and its base part is ag_frozen_linear's bit for bit (so B = 0, the
 * usual initialisation, gives exactly ag_frozen_linear's y), but it keeps only y and u in the
 * arena instead of five [R, out] or [R, in] activations (and their gradients): drop(x) and
 * du·A exist only transiently, as [R, in] temporaries in the tape's shared scratch next to W's
 * tiles. Results do not depend on the thread count. *w is copied; w->ctx, a and b must stay
 * alive and unchanged until backward has run or the tape is reset. A node (inputs x, a, b) is
 * recorded only when some input requires grad. NULL if an input is NULL, x's last dim is not
 * w->cols, a is not [r, in] or b not [out, r] with r >= 1, dtypes differ, w is invalid (as for
 * ag_frozen_linear), p is not in [0, 1), or the arena or tape is full. */
ag_tensor *ag_lora_linear(ag_tape *t, ag_tensor *x, const ag_frozen *w, ag_tensor *a, ag_tensor *b,
                          double s, double p, uint64_t seed);
/* a + b where b has a's shape or a's trailing dims (bias [C] or positions [T,C] broadcast). */
ag_tensor *ag_add(ag_tape *t, ag_tensor *a, ag_tensor *b);
ag_tensor *ag_mul(ag_tape *t, ag_tensor *a, ag_tensor *b); /* elementwise, same shape */
ag_tensor *ag_scale(ag_tape *t, ag_tensor *a, double s);
ag_tensor *ag_gelu(ag_tape *t, ag_tensor *x); /* tanh approximation */
/* Normalise over the last dim. w, b: [C]. */
ag_tensor *ag_layernorm(ag_tape *t, ag_tensor *x, ag_tensor *w, ag_tensor *b, double eps);
ag_tensor *ag_rmsnorm(ag_tape *t, ag_tensor *x, ag_tensor *w, double eps);
/* out[b,t,:] = table[ids[b*T+t], :]; table [V,C]; ids are copied into the arena. */
ag_tensor *ag_embedding(ag_tape *t, ag_tensor *table, const int32_t *ids, int64_t B, int64_t T);
/* Rotary embedding on x [B,T,C] split in n_head heads of HS = C/n_head: the interleaved pair
 * (2j, 2j+1) of each head at position pos0+t is rotated by angle (pos0+t)·base^(-2j/HS). */
ag_tensor *ag_rope(ag_tape *t, ag_tensor *x, int n_head, int64_t pos0, double base);
/* The same rotation on the q and k thirds of a packed projection qkv [B,T,3C] = [q | k | v]
 * (n_head heads each); v is copied unrotated. For ag_attention_packed. */
ag_tensor *ag_rope_packed(ag_tape *t, ag_tensor *qkv, int n_head, int64_t pos0, double base);
/* Fused causal multi-head attention: q,k,v [B,T,C] → [B,T,C], softmax(q kᵀ/√HS) v per head. */
ag_tensor *ag_attention(ag_tape *t, ag_tensor *q, ag_tensor *k, ag_tensor *v, int n_head);
/* The same attention over one packed projection qkv [B,T,3C] = [q | k | v] along its last dim
 * (the output of one linear layer by the stacked [3C,C] weight): → [B,T,C], bit for bit what
 * ag_attention gives on the three slices; the gradient goes into qkv's. No split, no copy. */
ag_tensor *ag_attention_packed(ag_tape *t, ag_tensor *qkv, int n_head);
/* Mean over rows with targets[r] >= 0 of -log softmax(logits[r])[targets[r]]; logits [N,V]
 * (or [B,T,V]); targets (N entries, copied) < 0 are ignored. Output: scalar tensor (ndim 0).
 * If no target is valid the loss is 0. */
ag_tensor *ag_cross_entropy(ag_tape *t, ag_tensor *logits, const int32_t *targets);

/* GRPO policy loss (autograd/ops/grpo.c). N sequences of T tokens: logits [N,T,V] or [R,V] with
 * R = N·T; targets [R] (token id, < 0: not a completion token, ignored). Per valid token t of
 * sequence i: logp = log softmax(logits_t)[target_t], ratio = exp(logp − old_t),
 * s = min(ratio·A_i, clamp(ratio, 1 − eps_low, 1 + eps_high)·A_i), kl = exp(ref_t − logp) −
 * (ref_t − logp) − 1 (k3), token loss l = −(s − beta·kl). Gradient through logp only:
 * dl/dlogp = −ratio·A where min takes the unclipped term (also on ties and for ratio inside the
 * range), 0 where it takes the clipped one, plus beta·(1 − exp(ref − logp)). */
typedef enum ag_grpo_agg {
    AG_GRPO_SEQ_MEAN = 0, /* "grpo": mean over the N sequences of (Σ its l / its valid tokens); a
                             sequence without valid tokens adds 0 but still counts in N */
    AG_GRPO_CONST_NORM,   /* "dr_grpo": Σ all l / (N·max_len) */
    AG_GRPO_TOKEN_MEAN    /* "dapo": Σ all l / valid tokens (0 if there are none) */
} ag_grpo_agg;
typedef struct ag_grpo_spec {
    const double *adv;        /* [N] advantage of each sequence */
    const double *old_logp;   /* [R] logp under the sampling policy (read where target >= 0);
                                 NULL: the current logp detached (ratio exactly 1, mu = 1) */
    const double *ref_logp;   /* [R] logp under the reference policy; NULL or beta = 0: no KL */
    double eps_low, eps_high; /* clip range [1 − eps_low, 1 + eps_high], both >= 0 */
    double beta;              /* KL coefficient >= 0 */
    ag_grpo_agg agg;
    int64_t max_len; /* dr_grpo's constant (> 0); unused by the other aggregations */
    int64_t n_seq;   /* N >= 1, dividing R */
} ag_grpo_spec;
/* Metrics over the valid tokens of one call (all 0 when there are none). */
typedef struct ag_grpo_stats {
    double kl_mean;        /* mean k3 KL; computed whenever ref_logp is given, even with beta 0 */
    double clip_frac;      /* fraction where min took the clipped term (zero surrogate gradient) */
    double clip_low_frac;  /* ... of which ratio < 1 − eps_low (A < 0) */
    double clip_high_frac; /* ... of which ratio > 1 + eps_high (A > 0) */
    double ratio_mean;
    int64_t n_valid;
} ag_grpo_stats;
/* The scalar GRPO loss (ndim 0, logits' dtype). The arrays of spec are read during the call
 * only (targets are copied for backward). Per-token terms and the reduction run in double in a
 * fixed order: the result does not depend on the thread count. stats (may be NULL) is filled.
 * NULL if an input is NULL, logits is not 2-D or 3-D (3-D: shape[0] must be n_seq), a target is
 * >= V, spec->adv is NULL, n_seq < 1 or does not divide R, eps or beta is negative (or NaN),
 * agg is unknown, max_len <= 0 for CONST_NORM, or the arena is full. */
ag_tensor *ag_grpo_loss(ag_tape *t, ag_tensor *logits, const int32_t *targets,
                        const ag_grpo_spec *spec, ag_grpo_stats *stats);
/* out[r] = log softmax(logits_r)[targets[r]] for each of the R rows (0 where targets[r] < 0),
 * bit for bit the logp ag_grpo_loss computes (so it serves as old_logp/ref_logp with ratio
 * exactly 1). No tape. 0, or -1 on the inputs ag_grpo_loss rejects for logits and targets. */
int ag_token_logprobs(const ag_tensor *logits, const int32_t *targets, double *out);

/* Straight-through estimators for the fake-quantization op's backward. */
typedef enum {
    AG_STE_IDENTITY = 0, /* dx = dy */
    AG_STE_CLIPPED       /* dx = dy where the element did not saturate, 0 where it did */
} ag_ste;

typedef struct ag_fq_spec {
    mx_format format; /* MX_FP32: the op is the identity (and records nothing) */
    mx_rounding rounding;
    ag_ste ste;
    /* MX_FP32, or an anchor format (mxint8, mxfp8_e4m3, mxfp8_e5m2): the output is then
     * Slice-and-Scale of the anchor-quantized input, exactly what an anchor checkpoint deploys. */
    mx_format via;
} ag_fq_spec;

/* MX fake quantization of x in blocks of 32 along `axis`: the last axis (-1 or ndim-1), or axis 0
 * of a 2-D tensor. Backward: the straight-through estimator of spec->ste. AG_F64 inputs are
 * quantized through float (the formats are defined on float32). */
ag_tensor *ag_fakequant(ag_tape *t, ag_tensor *x, const ag_fq_spec *spec, int axis);

/* ---- gradient checking (double precision) --------------------------------------------------- */

/* Builds the function under test on `tape` from `in` (all AG_F64). */
typedef ag_tensor *(*ag_gc_build_fn)(ag_tape *tape, ag_tensor **in, void *ctx);

typedef struct ag_gc_report {
    double max_abs_err, max_rel_err; /* over all checked elements */
    int worst_input;
    size_t worst_index;
    double worst_analytic, worst_numeric;
    size_t n_checked;
    uint32_t ops_seen[(AG_OP_COUNT + 31) / 32]; /* bitmask of ops recorded on the tape */
} ag_gc_report;

/* Central differences with step eps on every element of every input with requires_grad, against
 * the tape's gradient of L = Σ out ⊙ R for a fixed pseudo-random R. An element passes when
 * |analytic − numeric| ≤ atol + rtol·max(|analytic|, |numeric|). Returns the number of failing
 * elements (0 = pass), or -1 on arena failure. */
int ag_gradcheck(ag_gc_build_fn build, void *ctx, ag_tensor **in, int n_in, double eps, double atol,
                 double rtol, ag_gc_report *rep);

/* ---- for op implementations (autograd/ops/) ------------------------------------------------- */

/* Allocate an output for an op with these inputs; sets requires_grad from them when recording. */
ag_tensor *ag_op_output(ag_tape *t, ag_dtype d, int ndim, const int64_t *shape, ag_tensor **in,
                        int n_in);
/* Record a node (no-op when not recording or no input needs grad). Returns NULL on failure. */
ag_node *ag_record(ag_tape *t, ag_op op, ag_tensor *out, ag_tensor **in, int n_in);
void *ag_tape_alloc(ag_tape *t, size_t bytes); /* arena allocation attributed to the tape */
/* One scratch buffer shared by every op of the tape, outside the arena, 64-byte aligned: its
 * contents live only within one forward or backward call. A forward asks for what it and its
 * backward will need (the buffer grows, so mallocs happen only while a step first reaches its
 * largest op); backward asks for 0 and gets the current buffer. It may move when it grows: keep
 * offsets into it, not pointers. NULL when growing fails (ag_tape_error says so). */
void *ag_tape_shared(ag_tape *t, size_t bytes);
ag_backward_fn ag_op_backward(ag_op op);
/* Bit j: the op's backward can assign (rather than accumulate into) in[j]->grad. */
unsigned ag_op_assign_inputs(ag_op op);

#endif
