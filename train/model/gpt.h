/* gpt.h — the GPT model: parameters (one allocation, named like a PyTorch state dict) and the
 * forward pass recorded on an autograd tape.
 *
 * Layout per block (pre-norm): x += wo·attn(rope(wq·ln1(x)), rope(wk·ln1(x)), wv·ln1(x));
 *                              x += down·gelu(up·ln2(x)).
 * Names and shapes follow ../shared/DESIGN.md: wte [V,C], wpe [T,C], h.{i}.ln1.weight [C], ...,
 * lm_head [V,C] (absent when tied). Matrices are [out, in], row-major.
 *
 * CRoPE attention (model.attention = crope, docs/CROPE.md): q, k, v (and o unless
 * crope_output = real) are complex-linear maps of the residual stream read as C/2 complex numbers
 * (interleaved pairs), each stored as two real planes h.{i}.attn.wq.re / wq.im [C/2, C/2]; rope
 * then is the complex rotation q̃_j·e^{i·pos·θ_j} itself. Each plane is fake-quantized on its own
 * (blocks of 32 along its input axis), never the expanded real matrix. */
#ifndef QAT_TRAIN_MODEL_GPT_H
#define QAT_TRAIN_MODEL_GPT_H

#include "autograd/ag.h"
#include "train/io/config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QT_NAME_MAX 96

typedef struct qt_param {
    char name[QT_NAME_MAX];
    ag_tensor t; /* data and grad point into the model's storage */
    bool decay;  /* weight decay applies (matrices and embeddings, not norms) */
} qt_param;

struct qt_packed; /* train/model/packed.h */

/* QLoRA (lora.enabled, train/model/lora.c): one of a block's six linear layers. Its base weight
 * is frozen and kept packed (qt_packed) — it is not a parameter and has no float copy; the
 * adapters are parameters: y = W x + s·B·A·dropout(x), s = alpha/r (or alpha/√r). */
typedef struct qt_lora_slot {
    char name[QT_NAME_MAX]; /* the base weight's name, e.g. "h.0.attn.wq" */
    int64_t rows, cols;     /* [out, in] */
    struct qt_packed *base; /* NULL until qt_lora_set_base */
    ag_frozen frozen;       /* ag_frozen_linear's view of base */
    ag_tensor *a, *b;       /* "NAME.lora_a" [r, in], "NAME.lora_b" [out, r]; NULL: no adapter */
} qt_lora_slot;

typedef struct qt_block {
    ag_tensor *ln1_w, *ln1_b; /* ln1_b NULL for RMSNorm */
    /* Standard: [C,C] each. CRoPE: the real planes (wq.re ...) [C/2,C/2]; wo is [C,C] and
     * wo_im NULL when crope_output = real. */
    ag_tensor *wq, *wk, *wv, *wo;
    ag_tensor *wq_im, *wk_im, *wv_im, *wo_im; /* CRoPE imaginary planes; NULL otherwise */
    ag_tensor *ln2_w, *ln2_b, *up, *down;     /* ln2_b NULL for RMSNorm */
    /* QLoRA: the slots of q, k, v, o, up, down (QT_LORA_Q..QT_LORA_DOWN); the float weights above
     * are then NULL. NULL when LoRA is off. */
    qt_lora_slot *lora[QT_LORA_NTARGETS];
} qt_block;

/* Fake quantization applied to every linear layer during a forward pass (blocks of 32 along the
 * reduction dim, i.e. the last axis of both the input and the [out,in] weight). */
typedef struct qt_quant {
    mx_format format; /* MX_FP32 = off */
    mx_rounding rounding;
    ag_ste ste;
    mx_format weights_via; /* MX_FP32, or the anchor format: weights = SnS(anchor(W)) */
    bool weights_ready;    /* the weights already hold quantized values (loaded from an anchor):
                              quantize activations only, never re-quantize the weights */
    bool activations;      /* also the inputs of each linear layer */
    bool head;             /* also the output projection (lm_head or tied wte) */
} qt_quant;

/* Calibration hook (qat-ptq): called by each real linear layer that goes through qlinear (every
 * block matrix but CRoPE's complex planes; the output projection only when quant.head) with its
 * parameter w [out,in] — the model's own tensor, before any weight quantization — and the input x
 * [..., in] it multiplies (after activation quantization, as the layer sees it). Read-only; x dies
 * with the forward's arena. */
typedef void (*qt_linear_observer)(void *ctx, const ag_tensor *w, const ag_tensor *x);

typedef struct qt_model {
    int L, NH, C, F, T, V; /* layers, heads, width, MLP width, max sequence, vocabulary */
    qt_norm norm;
    qt_positions positions;
    bool crope;          /* CRoPE attention */
    bool crope_real_out; /* ... with a real output projection */
    bool tied;
    float *data, *grad; /* all parameters, then all gradients, contiguous */
    size_t n_floats;
    qt_param *params;
    size_t n_params;
    ag_tensor *wte, *wpe, *lnf_w, *lnf_b, *lm_head; /* wpe, lnf_b, lm_head may be NULL */
    qt_block *blocks;
    qt_quant quant;             /* used by the next forward passes; format MX_FP32 after create */
    qt_linear_observer observe; /* NULL (the default) or a calibration hook */
    void *observe_ctx;
    /* QLoRA (lora.enabled): L·6 slots, the adapters' scale and dropout. Frozen parameters (wte,
     * wpe, lm_head, and the norms unless lora.train_norms) have requires_grad false. */
    qt_lora_slot *slots;
    size_t n_slots;
    int lora_rank;
    double lora_scale, lora_dropout;
    qt_lora_base lora_base;
    bool lora_double_quant;
    /* Seed of the adapters' dropout masks for the next recorded forward pass (the training
     * step draws it from the dropout RNG stream); each slot mixes in its own index. */
    uint64_t dropout_seed;
} qt_model;

/* Allocate a model for cfg->model (parameters uninitialised). NULL with a message on failure. */
qt_model *qt_model_create(const qt_config *cfg, char *err, size_t errlen);
void qt_model_free(qt_model *m);

/* GPT-2 initialisation: N(0, 0.02) for matrices and embeddings, residual projections (wo, down)
 * scaled by 1/sqrt(2L), norm weights 1 and biases 0. `normal` returns N(0,1) samples. */
void qt_model_init(qt_model *m, double (*normal)(void *rng), void *rng);

void qt_model_zero_grad(qt_model *m);
/* The quantization of the next forward passes (the per-step format under MF-QAT). */
void qt_model_set_quant(qt_model *m, const qt_quant *q);
/* Whether parameter p goes through a quantized linear layer under m->quant's options (the
 * matrices of every block; the output projection when q->head). Anchors store exactly these. */
bool qt_model_param_quantized(const qt_model *m, const qt_param *p, bool head);
qt_param *qt_model_find(qt_model *m, const char *name);

/* wq, wk, wv of block k as one [3C,C] weight: a view (tape memory) over their data and grads,
 * which the model lays out back to back, or NULL when they are not plain real [C,C] parameters
 * laid out so (CRoPE, QLoRA). Training and evaluation multiply by it once instead of three times.
 */
ag_tensor *qt_block_qkv_weight(ag_tape *t, const qt_block *k);
/* Logits [B,T,V] for token ids x [B,T] (T ≤ model T). Records on the tape when it is recording. */
ag_tensor *qt_model_logits(qt_model *m, ag_tape *tape, const int32_t *x, int B, int T);
/* Generation with a KV cache (train/run/generate.h): the attention of block `layer` for T new
 * rows at positions pos0..pos0+T-1, given their q and k (after rotary positions, if any) and v,
 * each [1,T,C]. It returns the attention output [1,T,C] (before the output projection) as a
 * tensor of tape t, attending causally over the earlier positions it keeps and these rows. NULL
 * on failure. */
typedef ag_tensor *(*qt_attend_fn)(void *ctx, ag_tape *t, int layer, int64_t pos0, ag_tensor *q,
                                   ag_tensor *k, ag_tensor *v);
/* Logits [1,T,V] of tokens x [T] at positions pos0..pos0+T-1 (pos0 + T <= model T) whose
 * attention goes through attend (required); the same operations as qt_model_logits otherwise,
 * under m->quant. QLoRA adapters run without dropout on a non-recording tape. NULL on failure. */
ag_tensor *qt_model_logits_at(qt_model *m, ag_tape *t, const int32_t *x, int T, int64_t pos0,
                              qt_attend_fn attend, void *ctx);
/* Mean next-token cross-entropy against targets y [B,T] (entries < 0 ignored). */
ag_tensor *qt_model_loss(qt_model *m, ag_tape *tape, const int32_t *x, const int32_t *y, int B,
                         int T);

/* Parameter count of the whole model, and of the attention projections alone (QLoRA: the frozen
 * base weights included; qt_lora_trainable_count gives what trains). */
size_t qt_model_param_count(const qt_model *m);
size_t qt_model_attn_param_count(const qt_model *m);

/* ---- QLoRA (lora.c) ---- */

/* Quantize the float base weight w [rows, cols] of slot s into m's base format (packed). Returns
 * 0, or -1 with a message (shape the format cannot hold, out of memory). */
int qt_lora_set_base(qt_model *m, qt_lora_slot *s, const float *w, char *err, size_t errlen);
qt_lora_slot *qt_lora_find(qt_model *m, const char *name); /* by base weight name */
/* Weights in the frozen base, the bytes it holds packed, and the trainable parameter count. */
size_t qt_lora_base_count(const qt_model *m);
size_t qt_lora_base_bytes(const qt_model *m);
size_t qt_lora_trainable_count(const qt_model *m);
/* FNV-1a fingerprint of every packed base weight (format, shape and bytes), in slot order. */
uint64_t qt_lora_base_hash(const qt_model *m);
/* Dequantized base weight of slot s plus its adapter's s·B·A, into out [rows, cols]: the merged
 * float weight (qat-merge). */
void qt_lora_merged_weight(const qt_model *m, const qt_lora_slot *s, float *out);

#endif
