/* gpt.c — GPT parameters and forward pass. */
#include "train/model/gpt.h"

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
    size_t n_params, n_floats;
    bool assign;
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

static void layout(builder *b) {
    qt_model *m = b->m;
    int64_t C = m->C, F = m->F, V = m->V, T = m->T;
    bool ln = m->norm == QT_NORM_LAYERNORM;
    m->wte = add(b, true, 2, V, C, "wte");
    m->wpe = m->positions == QT_POS_LEARNED ? add(b, true, 2, T, C, "wpe") : NULL;
    for (int i = 0; i < m->L; i++) {
        qt_block *k = &m->blocks[i];
        k->ln1_w = add(b, false, 1, C, 0, "h.%d.ln1.weight", i);
        k->ln1_b = ln ? add(b, false, 1, C, 0, "h.%d.ln1.bias", i) : NULL;
        if (m->crope)
            crope_layout(b, k, i);
        else {
            k->wq = add(b, true, 2, C, C, "h.%d.attn.wq", i);
            k->wk = add(b, true, 2, C, C, "h.%d.attn.wk", i);
            k->wv = add(b, true, 2, C, C, "h.%d.attn.wv", i);
            k->wo = add(b, true, 2, C, C, "h.%d.attn.wo", i);
        }
        k->ln2_w = add(b, false, 1, C, 0, "h.%d.ln2.weight", i);
        k->ln2_b = ln ? add(b, false, 1, C, 0, "h.%d.ln2.bias", i) : NULL;
        k->up = add(b, true, 2, F, C, "h.%d.mlp.up", i);
        k->down = add(b, true, 2, C, F, "h.%d.mlp.down", i);
    }
    m->lnf_w = add(b, false, 1, C, 0, "ln_f.weight");
    m->lnf_b = ln ? add(b, false, 1, C, 0, "ln_f.bias") : NULL;
    m->lm_head = m->tied ? NULL : add(b, true, 2, V, C, "lm_head");
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
    builder count = {.m = m};
    layout(&count);
    m->n_params = count.n_params;
    m->n_floats = count.n_floats;
    m->params = calloc(m->n_params, sizeof *m->params);
    m->data = calloc(m->n_floats, sizeof(float));
    m->grad = calloc(m->n_floats, sizeof(float));
    if (!m->params || !m->data || !m->grad)
        goto oom;
    builder fill = {.m = m, .assign = true};
    layout(&fill);
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

/* The first T rows of wpe as a view sharing wpe's data and grad. */
static ag_tensor *positions_view(ag_tape *t, ag_tensor *wpe, int T) {
    ag_tensor *v = ag_tape_alloc(t, sizeof *v);
    if (!v)
        return NULL;
    int64_t shape[2] = {T, wpe->shape[1]};
    ag_tensor_wrap(v, AG_F32, wpe->data, wpe->grad, 2, shape);
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

static ag_tensor *attention(qt_model *m, ag_tape *t, qt_block *k, ag_tensor *h) {
    h = quant_input(m, t, h);
    ag_tensor *q = project(m, t, h, k->wq, k->wq_im); /* (B,T,C) */
    ag_tensor *kk = project(m, t, h, k->wk, k->wk_im);
    ag_tensor *v = project(m, t, h, k->wv, k->wv_im);
    /* Under CRoPE (which requires rotary positions) this rotation is the complex one, q̃_j ←
     * q̃_j·e^{i·pos·θ_j} on the interleaved pairs; the real dot product of the rotated vectors is
     * Re(Σ conj(q̃_j) k̃_j), so softmax and the value mix need nothing new. */
    if (m->positions == QT_POS_ROPE) {
        q = ag_rope(t, q, m->NH, 0, ROPE_BASE);
        kk = ag_rope(t, kk, m->NH, 0, ROPE_BASE);
    }
    ag_tensor *a = quant_input(m, t, ag_attention(t, q, kk, v, m->NH));
    return project(m, t, a, k->wo, k->wo_im);
}

ag_tensor *qt_model_logits(qt_model *m, ag_tape *t, const int32_t *x, int B, int T) {
    if (T > m->T)
        return NULL;
    ag_tensor *h = ag_embedding(t, m->wte, x, B, T); /* (B,T,C) */
    if (m->wpe)
        h = ag_add(t, h, positions_view(t, m->wpe, T));
    for (int i = 0; i < m->L; i++) {
        qt_block *k = &m->blocks[i];
        h = ag_add(t, h, attention(m, t, k, norm(m, t, h, k->ln1_w, k->ln1_b)));
        ag_tensor *u = quant_input(m, t, norm(m, t, h, k->ln2_w, k->ln2_b));
        u = quant_input(m, t, ag_gelu(t, qlinear(m, t, u, k->up)));
        h = ag_add(t, h, qlinear(m, t, u, k->down));
    }
    h = norm(m, t, h, m->lnf_w, m->lnf_b);
    ag_tensor *head = m->lm_head ? m->lm_head : m->wte;
    if (!m->quant.head)
        return ag_linear(t, h, head); /* (B,T,V) */
    return qlinear(m, t, quant_input(m, t, h), head);
}

ag_tensor *qt_model_loss(qt_model *m, ag_tape *t, const int32_t *x, const int32_t *y, int B,
                         int T) {
    return ag_cross_entropy(t, qt_model_logits(m, t, x, B, T), y);
}

size_t qt_model_param_count(const qt_model *m) { return m->n_floats; }

size_t qt_model_attn_param_count(const qt_model *m) {
    size_t n = 0;
    for (int i = 0; i < m->L; i++) {
        const qt_block *k = &m->blocks[i];
        const ag_tensor *ts[8] = {k->wq,    k->wk,    k->wv,    k->wo,
                                  k->wq_im, k->wk_im, k->wv_im, k->wo_im};
        for (int j = 0; j < 8; j++)
            n += ts[j] ? ts[j]->numel : 0;
    }
    return n;
}
