/* gpt.c — GPT parameters and forward pass. */
#include "train/model/gpt.h"

#include "train/model/packed.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LN_EPS 1e-5
#define ROPE_BASE 10000.0

/* The parameter table is built in two passes over the same code: the first counts, the second
 * assigns storage. `add` returns the tensor (NULL in the counting pass). */
typedef struct builder {
    qt_model *m;
    size_t n_params, n_floats, n_slots;
    bool assign;
    unsigned lora_targets; /* QLoRA: layers with adapters (bits QT_LORA_Q..), 0 otherwise */
} builder;

static ag_tensor *add(builder *b, bool decay, int ndim, int64_t d0, int64_t d1, const char *fmt,
                      ...) {
    size_t numel = (size_t)d0 * (size_t)(ndim == 2 ? d1 : 1);
    ag_tensor *t = NULL;
    if (b->assign) {
        qt_param *p = &b->m->params[b->n_params];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->name, sizeof p->name, fmt, ap);
        va_end(ap);
        int64_t shape[2] = {d0, d1};
        ag_tensor_wrap(&p->t, AG_F32, b->m->data + b->n_floats, b->m->grad + b->n_floats, ndim,
                       shape);
        p->t.requires_grad = true;
        p->decay = decay;
        t = &p->t;
    }
    b->n_params++;
    b->n_floats += numel;
    return t;
}

/* CRoPE's complex projections: real and imaginary planes [C/2, C/2] (DESIGN.md names). */
static void crope_layout(builder *b, qt_block *k, int i) {
    int64_t H = b->m->C / 2;
    k->wq = add(b, true, 2, H, H, "h.%d.attn.wq.re", i);
    k->wq_im = add(b, true, 2, H, H, "h.%d.attn.wq.im", i);
    k->wk = add(b, true, 2, H, H, "h.%d.attn.wk.re", i);
    k->wk_im = add(b, true, 2, H, H, "h.%d.attn.wk.im", i);
    k->wv = add(b, true, 2, H, H, "h.%d.attn.wv.re", i);
    k->wv_im = add(b, true, 2, H, H, "h.%d.attn.wv.im", i);
    if (b->m->crope_real_out) {
        k->wo = add(b, true, 2, 2 * H, 2 * H, "h.%d.attn.wo", i);
    } else {
        k->wo = add(b, true, 2, H, H, "h.%d.attn.wo.re", i);
        k->wo_im = add(b, true, 2, H, H, "h.%d.attn.wo.im", i);
    }
}

/* QLoRA: a frozen linear layer [out, in] of block i — a slot, not a parameter — with adapters
 * when it is a target. */
static qt_lora_slot *lora_slot(builder *b, int which, int64_t out, int64_t in, const char *name,
                               int i) {
    qt_model *m = b->m;
    qt_lora_slot *s = NULL;
    char full[QT_NAME_MAX];
    snprintf(full, sizeof full, name, i);
    if (b->assign) {
        s = &m->slots[b->n_slots];
        snprintf(s->name, sizeof s->name, "%s", full);
        s->rows = out;
        s->cols = in;
        s->frozen = (ag_frozen){.rows = out, .cols = in, .dequant_rows = qt_packed_dequant_rows};
    }
    b->n_slots++;
    if (b->lora_targets & (1u << which)) {
        ag_tensor *a = add(b, true, 2, m->lora_rank, in, "%s.lora_a", full);
        ag_tensor *bb = add(b, true, 2, out, m->lora_rank, "%s.lora_b", full);
        if (s) {
            s->a = a;
            s->b = bb;
        }
    }
    return s;
}

static void lora_attention(builder *b, qt_block *k, int i) {
    int64_t C = b->m->C;
    k->lora[QT_LORA_Q] = lora_slot(b, QT_LORA_Q, C, C, "h.%d.attn.wq", i);
    k->lora[QT_LORA_K] = lora_slot(b, QT_LORA_K, C, C, "h.%d.attn.wk", i);
    k->lora[QT_LORA_V] = lora_slot(b, QT_LORA_V, C, C, "h.%d.attn.wv", i);
    k->lora[QT_LORA_O] = lora_slot(b, QT_LORA_O, C, C, "h.%d.attn.wo", i);
}

static void attention_weights(builder *b, qt_block *k, int i) {
    int64_t C = b->m->C;
    if (b->m->lora_rank)
        lora_attention(b, k, i);
    else if (b->m->crope)
        crope_layout(b, k, i);
    else {
        k->wq = add(b, true, 2, C, C, "h.%d.attn.wq", i);
        k->wk = add(b, true, 2, C, C, "h.%d.attn.wk", i);
        k->wv = add(b, true, 2, C, C, "h.%d.attn.wv", i);
        k->wo = add(b, true, 2, C, C, "h.%d.attn.wo", i);
    }
}

static void mlp_weights(builder *b, qt_block *k, int i) {
    int64_t C = b->m->C, F = b->m->F;
    if (b->m->lora_rank) {
        k->lora[QT_LORA_UP] = lora_slot(b, QT_LORA_UP, F, C, "h.%d.mlp.up", i);
        k->lora[QT_LORA_DOWN] = lora_slot(b, QT_LORA_DOWN, C, F, "h.%d.mlp.down", i);
    } else {
        k->up = add(b, true, 2, F, C, "h.%d.mlp.up", i);
        k->down = add(b, true, 2, C, F, "h.%d.mlp.down", i);
    }
}

static void layout(builder *b) {
    qt_model *m = b->m;
    int64_t C = m->C, V = m->V, T = m->T;
    bool ln = m->norm == QT_NORM_LAYERNORM;
    m->wte = add(b, true, 2, V, C, "wte");
    m->wpe = m->positions == QT_POS_LEARNED ? add(b, true, 2, T, C, "wpe") : NULL;
    for (int i = 0; i < m->L; i++) {
        qt_block *k = &m->blocks[i];
        k->ln1_w = add(b, false, 1, C, 0, "h.%d.ln1.weight", i);
        k->ln1_b = ln ? add(b, false, 1, C, 0, "h.%d.ln1.bias", i) : NULL;
        attention_weights(b, k, i);
        k->ln2_w = add(b, false, 1, C, 0, "h.%d.ln2.weight", i);
        k->ln2_b = ln ? add(b, false, 1, C, 0, "h.%d.ln2.bias", i) : NULL;
        mlp_weights(b, k, i);
    }
    m->lnf_w = add(b, false, 1, C, 0, "ln_f.weight");
    m->lnf_b = ln ? add(b, false, 1, C, 0, "ln_f.bias") : NULL;
    m->lm_head = m->tied ? NULL : add(b, true, 2, V, C, "lm_head");
}

/* QLoRA: rank, scale, dropout, base format and the slot array, before the layout passes. */
static int lora_setup(qt_model *m, const qt_config *cfg, unsigned *targets, char *err,
                      size_t errlen) {
    if (qt_config_lora_targets(cfg, targets, err, errlen) != 0)
        return -1;
    m->lora_rank = cfg->lora.rank;
    m->lora_scale =
        cfg->lora.alpha / (cfg->lora.rslora ? sqrt((double)m->lora_rank) : (double)m->lora_rank);
    m->lora_dropout = cfg->lora.dropout;
    m->lora_base = cfg->lora.base_format;
    m->lora_double_quant = cfg->lora.double_quant;
    m->n_slots = (size_t)m->L * QT_LORA_NTARGETS;
    if (!(m->slots = calloc(m->n_slots, sizeof *m->slots))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* QLoRA trains the adapters only (and the norms with lora.train_norms). */
static void freeze(qt_model *m, bool train_norms) {
    for (size_t i = 0; i < m->n_params; i++) {
        qt_param *p = &m->params[i];
        bool adapter = strstr(p->name, ".lora_a") || strstr(p->name, ".lora_b");
        p->t.requires_grad = adapter || (train_norms && p->t.ndim == 1);
    }
}

qt_model *qt_model_create(const qt_config *cfg, char *err, size_t errlen) {
    qt_model *m = calloc(1, sizeof *m);
    if (!m)
        goto oom;
    m->L = cfg->model.n_layer;
    m->NH = cfg->model.n_head;
    m->C = cfg->model.d_model;
    m->F = cfg->model.d_ff;
    m->T = cfg->model.seq_len;
    m->V = cfg->model.vocab_size;
    m->norm = cfg->model.norm;
    m->positions = cfg->model.positions;
    m->crope = cfg->model.attention == QT_ATTN_CROPE;
    m->crope_real_out = m->crope && cfg->model.crope_output == QT_CROPE_OUT_REAL;
    m->tied = cfg->model.tie_embeddings;
    m->blocks = calloc((size_t)m->L, sizeof *m->blocks);
    if (!m->blocks)
        goto oom;
    unsigned targets = 0;
    if (cfg->lora.enabled && lora_setup(m, cfg, &targets, err, errlen) != 0) {
        qt_model_free(m);
        return NULL;
    }
    builder count = {.m = m, .lora_targets = targets};
    layout(&count);
    m->n_params = count.n_params;
    m->n_floats = count.n_floats;
    m->params = calloc(m->n_params, sizeof *m->params);
    m->data = calloc(m->n_floats, sizeof(float));
    m->grad = calloc(m->n_floats, sizeof(float));
    if (!m->params || !m->data || !m->grad)
        goto oom;
    builder fill = {.m = m, .assign = true, .lora_targets = targets};
    layout(&fill);
    if (m->lora_rank)
        freeze(m, cfg->lora.train_norms);
    return m;
oom:
    snprintf(err, errlen, "out of memory allocating the model (%d layers, d_model %d)",
             cfg->model.n_layer, cfg->model.d_model);
    qt_model_free(m);
    return NULL;
}

void qt_model_free(qt_model *m) {
    if (!m)
        return;
    for (size_t i = 0; m->slots && i < m->n_slots; i++) {
        qt_packed_free(m->slots[i].base);
        free(m->slots[i].base);
    }
    free(m->slots);
    free(m->params);
    free(m->data);
    free(m->grad);
    free(m->blocks);
    free(m);
}

static void fill_normal(ag_tensor *t, double std, double (*normal)(void *), void *rng) {
    float *d = t->data;
    for (size_t i = 0; i < t->numel; i++)
        d[i] = (float)(std * normal(rng));
}

static void fill_const(ag_tensor *t, float v) {
    if (!t)
        return;
    float *d = t->data;
    for (size_t i = 0; i < t->numel; i++)
        d[i] = v;
}

void qt_model_init(qt_model *m, double (*normal)(void *rng), void *rng) {
    double resid = 0.02 / sqrt(2.0 * m->L);
    /* Order is fixed (the parameter table order) so a seed always gives the same model. */
    for (size_t i = 0; i < m->n_params; i++) {
        qt_param *p = &m->params[i];
        if (p->t.ndim == 1) {
            fill_const(&p->t, strstr(p->name, ".bias") ? 0.0f : 1.0f);
        } else if (strstr(p->name, ".lora_b")) {
            fill_const(&p->t, 0.0f); /* adapters start as the identity update */
        } else if (strstr(p->name, ".lora_a")) {
            /* The variance of PEFT's kaiming_uniform(a=√5), U(±1/√in): 1/(3·in). */
            fill_normal(&p->t, 1.0 / sqrt(3.0 * (double)p->t.shape[1]), normal, rng);
        } else {
            bool residual = strstr(p->name, ".attn.wo") || strstr(p->name, ".mlp.down");
            fill_normal(&p->t, residual ? resid : 0.02, normal, rng);
        }
    }
}

void qt_model_zero_grad(qt_model *m) { memset(m->grad, 0, m->n_floats * sizeof(float)); }

qt_param *qt_model_find(qt_model *m, const char *name) {
    for (size_t i = 0; i < m->n_params; i++)
        if (strcmp(m->params[i].name, name) == 0)
            return &m->params[i];
    return NULL;
}

static ag_tensor *norm(qt_model *m, ag_tape *t, ag_tensor *x, ag_tensor *w, ag_tensor *b) {
    return m->norm == QT_NORM_LAYERNORM ? ag_layernorm(t, x, w, b, LN_EPS)
                                        : ag_rmsnorm(t, x, w, LN_EPS);
}

/* Rows pos0..pos0+T-1 of wpe as a view sharing wpe's data and grad. */
static ag_tensor *positions_view(ag_tape *t, ag_tensor *wpe, int64_t pos0, int T) {
    ag_tensor *v = ag_tape_alloc(t, sizeof *v);
    if (!v)
        return NULL;
    int64_t C = wpe->shape[1], shape[2] = {T, C};
    float *g = wpe->grad ? (float *)wpe->grad + pos0 * C : NULL;
    ag_tensor_wrap(v, AG_F32, (float *)wpe->data + pos0 * C, g, 2, shape);
    v->requires_grad = wpe->requires_grad;
    return v;
}

void qt_model_set_quant(qt_model *m, const qt_quant *q) { m->quant = *q; }

bool qt_model_param_quantized(const qt_model *m, const qt_param *p, bool head) {
    if (p->t.ndim != 2)
        return false;
    if (&p->t == m->wpe)
        return false;
    if (&p->t == m->wte)
        return head && m->tied;
    if (&p->t == m->lm_head)
        return head;
    return true;
}

/* Input of a linear layer, fake-quantized when activations are (once, shared by its users). */
static ag_tensor *quant_input(qt_model *m, ag_tape *t, ag_tensor *x) {
    const qt_quant *q = &m->quant;
    if (q->format == MX_FP32 || !q->activations)
        return x;
    ag_fq_spec spec = {q->format, q->rounding, q->ste, MX_FP32};
    return ag_fakequant(t, x, &spec, -1);
}

/* A weight [out,in] as the step uses it: fake-quantized in the step's format along its input
 * axis, unless it already holds quantized values. */
static ag_tensor *qweight(qt_model *m, ag_tape *t, ag_tensor *w) {
    const qt_quant *q = &m->quant;
    if (q->format == MX_FP32 || q->weights_ready)
        return w;
    ag_fq_spec spec = {q->format, q->rounding, q->ste, q->weights_via};
    return ag_fakequant(t, w, &spec, -1);
}

/* y = x·Wᵀ with W fake-quantized in the step's format (x already went through quant_input). */
static ag_tensor *qlinear(qt_model *m, ag_tape *t, ag_tensor *x, ag_tensor *w) {
    if (m->observe && x)
        m->observe(m->observe_ctx, w, x);
    return ag_linear(t, x, qweight(m, t, w));
}

/* A projection of the attention block: real (im NULL), or CRoPE's complex-linear map whose two
 * planes are quantized each on its own. */
static ag_tensor *project(qt_model *m, ag_tape *t, ag_tensor *x, ag_tensor *re, ag_tensor *im) {
    if (!im)
        return qlinear(m, t, x, re);
    return ag_clinear(t, x, qweight(m, t, re), qweight(m, t, im));
}

/* QLoRA layer: the frozen base by tiles, plus the adapters' s·B·A·dropout(x) when it has them.
 * Dropout only on recorded (training) passes. Without activation quantization it is one fused
 * op that keeps only y and u = A·drop(x) for backward; under activation QAT the adapter input u
 * is fake-quantized too, which needs the composed ops. */
static ag_tensor *lora_linear(qt_model *m, ag_tape *t, ag_tensor *x, qt_lora_slot *s) {
    if (!s->a)
        return ag_frozen_linear(t, x, &s->frozen);
    uint64_t seed = m->dropout_seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(s - m->slots + 1));
    double p = ag_tape_recording(t) ? m->lora_dropout : 0.0;
    ag_tensor *a = qweight(m, t, s->a), *b = qweight(m, t, s->b);
    if (m->quant.format == MX_FP32 || !m->quant.activations)
        return ag_lora_linear(t, x, &s->frozen, a, b, m->lora_scale, p, seed);
    ag_tensor *y = ag_frozen_linear(t, x, &s->frozen);
    ag_tensor *u = quant_input(m, t, ag_linear(t, ag_dropout(t, x, p, seed), a)); /* (.., r) */
    return ag_add(t, y, ag_scale(t, ag_linear(t, u, b), m->lora_scale));
}

/* Block k's linear layer `which` (QT_LORA_Q..QT_LORA_DOWN) applied to x: QLoRA slot, CRoPE
 * complex projection or plain real weight. */
static ag_tensor *block_linear(qt_model *m, ag_tape *t, ag_tensor *x, qt_block *k, int which) {
    if (k->lora[which])
        return lora_linear(m, t, x, k->lora[which]);
    switch (which) {
    case QT_LORA_Q:
        return project(m, t, x, k->wq, k->wq_im);
    case QT_LORA_K:
        return project(m, t, x, k->wk, k->wk_im);
    case QT_LORA_V:
        return project(m, t, x, k->wv, k->wv_im);
    case QT_LORA_O:
        return project(m, t, x, k->wo, k->wo_im);
    case QT_LORA_UP:
        return qlinear(m, t, x, k->up);
    default:
        return qlinear(m, t, x, k->down);
    }
}

/* Quantizing the [3C,C] view is quantizing each of the three: MX blocks run along rows. */
ag_tensor *qt_block_qkv_weight(ag_tape *t, const qt_block *k) {
    if (!k->wq || !k->wk || !k->wv || k->wq_im || k->wq->ndim != 2 || !k->wq->grad)
        return NULL;
    const ag_tensor *w[3] = {k->wq, k->wk, k->wv};
    size_t n = k->wq->numel;
    for (int j = 0; j < 3; j++)
        if (!ag_same_shape(w[j], k->wq) || w[j]->requires_grad != k->wq->requires_grad ||
            (float *)w[j]->data != (float *)k->wq->data + j * n ||
            (float *)w[j]->grad != (float *)k->wq->grad + j * n)
            return NULL;
    ag_tensor *v = ag_tape_alloc(t, sizeof *v);
    if (!v)
        return NULL;
    int64_t shape[2] = {3 * k->wq->shape[0], k->wq->shape[1]};
    ag_tensor_wrap(v, AG_F32, k->wq->data, k->wq->grad, 2, shape);
    v->requires_grad = k->wq->requires_grad;
    return v;
}

/* Attention of x (already through quant_input) with q, k, v from one GEMM by the stacked weight
 * w3 [3C,C] into qkv [B,T,3C] (q and k rotated in place by ag_rope_packed under rotary
 * positions), read in place by ag_attention_packed: one larger GEMM each way instead of three
 * (dx summed inside the GEMM, not over three passes of dx). */
static ag_tensor *fused_attention(qt_model *m, ag_tape *t, ag_tensor *x, qt_block *k, ag_tensor *w3,
                                  int64_t pos0) {
    if (m->observe && x) { /* calibration sees the model's own three tensors, as unfused */
        m->observe(m->observe_ctx, k->wq, x);
        m->observe(m->observe_ctx, k->wk, x);
        m->observe(m->observe_ctx, k->wv, x);
    }
    ag_tensor *qkv = ag_linear(t, x, qweight(m, t, w3)); /* (B,T,3C) */
    if (m->positions == QT_POS_ROPE)
        qkv = ag_rope_packed(t, qkv, m->NH, pos0, ROPE_BASE);
    return ag_attention_packed(t, qkv, m->NH);
}

/* Block `layer`'s attention of the rows h at positions pos0.. (ag_attention over h itself, or
 * attend's cached keys and values when generating). Training and evaluation take the fused
 * q/k/v projection; CRoPE, QLoRA and generation (whose cache takes q, k, v apart) keep three
 * projections. */
static ag_tensor *attention(qt_model *m, ag_tape *t, int layer, ag_tensor *h, int64_t pos0,
                            qt_attend_fn attend, void *ctx) {
    qt_block *k = &m->blocks[layer];
    h = quant_input(m, t, h);
    ag_tensor *w3 = !attend && h ? qt_block_qkv_weight(t, k) : NULL;
    if (w3) {
        ag_tensor *o = fused_attention(m, t, h, k, w3, pos0);
        return block_linear(m, t, quant_input(m, t, o), k, QT_LORA_O);
    }
    ag_tensor *q = block_linear(m, t, h, k, QT_LORA_Q); /* (B,T,C) */
    ag_tensor *kk = block_linear(m, t, h, k, QT_LORA_K);
    ag_tensor *v = block_linear(m, t, h, k, QT_LORA_V);
    /* Under CRoPE (which requires rotary positions) this rotation is the complex one, q̃_j ←
     * q̃_j·e^{i·pos·θ_j} on the interleaved pairs; the real dot product of the rotated vectors is
     * Re(Σ conj(q̃_j) k̃_j), so softmax and the value mix need nothing new. */
    if (m->positions == QT_POS_ROPE) {
        q = ag_rope(t, q, m->NH, pos0, ROPE_BASE);
        kk = ag_rope(t, kk, m->NH, pos0, ROPE_BASE);
    }
    ag_tensor *o =
        attend ? attend(ctx, t, layer, pos0, q, kk, v) : ag_attention(t, q, kk, v, m->NH);
    ag_tensor *a = quant_input(m, t, o);
    return block_linear(m, t, a, k, QT_LORA_O);
}

/* Logits [B,T,V] of tokens x [B,T] at positions pos0..pos0+T-1 (see qt_model_logits_at). */
static ag_tensor *forward(qt_model *m, ag_tape *t, const int32_t *x, int B, int T, int64_t pos0,
                          qt_attend_fn attend, void *ctx) {
    if (pos0 + T > m->T)
        return NULL;
    ag_tensor *h = ag_embedding(t, m->wte, x, B, T); /* (B,T,C) */
    if (m->wpe)
        h = ag_add(t, h, positions_view(t, m->wpe, pos0, T));
    for (int i = 0; i < m->L; i++) {
        qt_block *k = &m->blocks[i];
        h = ag_add(t, h, attention(m, t, i, norm(m, t, h, k->ln1_w, k->ln1_b), pos0, attend, ctx));
        ag_tensor *u = quant_input(m, t, norm(m, t, h, k->ln2_w, k->ln2_b));
        u = quant_input(m, t, ag_gelu(t, block_linear(m, t, u, k, QT_LORA_UP)));
        h = ag_add(t, h, block_linear(m, t, u, k, QT_LORA_DOWN));
    }
    h = norm(m, t, h, m->lnf_w, m->lnf_b);
    ag_tensor *head = m->lm_head ? m->lm_head : m->wte;
    if (!m->quant.head)
        return ag_linear(t, h, head); /* (B,T,V) */
    return qlinear(m, t, quant_input(m, t, h), head);
}

ag_tensor *qt_model_logits(qt_model *m, ag_tape *t, const int32_t *x, int B, int T) {
    return forward(m, t, x, B, T, 0, NULL, NULL);
}

ag_tensor *qt_model_logits_at(qt_model *m, ag_tape *t, const int32_t *x, int T, int64_t pos0,
                              qt_attend_fn attend, void *ctx) {
    if (!attend || T < 1 || pos0 < 0)
        return NULL;
    return forward(m, t, x, 1, T, pos0, attend, ctx);
}

ag_tensor *qt_model_loss(qt_model *m, ag_tape *t, const int32_t *x, const int32_t *y, int B,
                         int T) {
    return ag_cross_entropy(t, qt_model_logits(m, t, x, B, T), y);
}

size_t qt_model_param_count(const qt_model *m) { return m->n_floats + qt_lora_base_count(m); }

size_t qt_model_attn_param_count(const qt_model *m) {
    size_t n = 0;
    for (int i = 0; i < m->L; i++) {
        const qt_block *k = &m->blocks[i];
        const ag_tensor *ts[8] = {k->wq,    k->wk,    k->wv,    k->wo,
                                  k->wq_im, k->wk_im, k->wv_im, k->wo_im};
        for (int j = 0; j < 8; j++)
            n += ts[j] ? ts[j]->numel : 0;
        for (int j = QT_LORA_Q; j <= QT_LORA_O; j++) /* QLoRA: the frozen base's weights */
            n += k->lora[j] ? (size_t)(k->lora[j]->rows * k->lora[j]->cols) : 0;
    }
    return n;
}
