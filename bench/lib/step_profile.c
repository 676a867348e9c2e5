/* step_profile.c — the instrumented copy of qt_session_step: every op of qt_model_loss
 * (train/model/gpt.c) and every backward node of ag_backward (autograd/tape.c) timed and booked
 * to its role, plus the check that the copy still computes exactly what the real step does. */
#include "bench/lib/step_profile.h"
#include "bench/lib/bench_util.h"

#include "optim/opt.h"
#include "train/model/gpt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Must stay the model's own constant (train/model/gpt.c); the replica check below catches drift. */
#define BENCH_LN_EPS 1e-5
#define BENCH_ROPE_BASE 10000.0

static const char *const role_name[BENCH_ROLE_COUNT] = {
    "embed+pos", "norms", "linear qkv",  "rope",    "attention",     "linear wo", "residual add",
    "linear up", "gelu",  "linear down", "lm head", "cross-entropy", "fake quant"};

static const char *const phase_name[BENCH_PHASE_COUNT] = {
    "data batch", "forward",          "zero param grads", "bwd: grad buffers",
    "bwd: nodes", "clip (grad norm)", "optimizer step"};

const char *bench_role_name(int role) {
    return role >= 0 && role < BENCH_ROLE_COUNT ? role_name[role] : "?";
}

const char *bench_phase_name(int phase) {
    return phase >= 0 && phase < BENCH_PHASE_COUNT ? phase_name[phase] : "?";
}

int bench_prof_init(bench_prof *p, ag_tape *tape) {
    memset(p, 0, sizeof *p);
    p->tape = tape;
    p->tag_cap = (size_t)1 << 16;
    p->tag = calloc(p->tag_cap, 1);
    return p->tag ? 0 : -1;
}

void bench_prof_free(bench_prof *p) {
    free(p->tag);
    p->tag = NULL;
}

static void mark(bench_prof *p) {
    p->n0 = ag_tape_size(p->tape);
    p->c0 = bench_cpu_s();
    p->t0 = bench_now_s();
}

/* Ends the op started at mark(): adds its forward time to `role` and tags the nodes it recorded. */
static ag_tensor *done(bench_prof *p, int role, ag_tensor *r) {
    p->fwd[role] += bench_now_s() - p->t0;
    p->cpu[role] += bench_cpu_s() - p->c0;
    size_t n1 = ag_tape_size(p->tape);
    for (size_t i = p->n0; i < n1 && i < p->tag_cap; i++)
        p->tag[i] = (unsigned char)role;
    return r;
}

static ag_tensor *pos_view(ag_tape *t, ag_tensor *wpe, int T) {
    ag_tensor *v = ag_tape_alloc(t, sizeof *v);
    if (!v)
        return NULL;
    int64_t shape[2] = {T, wpe->shape[1]};
    ag_tensor_wrap(v, AG_F32, wpe->data, wpe->grad, 2, shape);
    v->requires_grad = wpe->requires_grad;
    return v;
}

static ag_tensor *norm_op(bench_prof *p, qt_model *m, ag_tensor *x, ag_tensor *w, ag_tensor *b) {
    mark(p);
    return done(p, BENCH_ROLE_NORM,
                m->norm == QT_NORM_LAYERNORM ? ag_layernorm(p->tape, x, w, b, BENCH_LN_EPS)
                                             : ag_rmsnorm(p->tape, x, w, BENCH_LN_EPS));
}

/* gpt.c's quant_input: the input of a linear layer, fake-quantized when activations are. */
static ag_tensor *quant_in(bench_prof *p, qt_model *m, ag_tensor *x) {
    const qt_quant *q = &m->quant;
    if (q->format == MX_FP32 || !q->activations)
        return x;
    ag_fq_spec spec = {q->format, q->rounding, q->ste, MX_FP32};
    mark(p);
    return done(p, BENCH_ROLE_FQ, ag_fakequant(p->tape, x, &spec, -1));
}

/* gpt.c's qlinear: y = x·Wᵀ with W fake-quantized in the step's format. */
static ag_tensor *linear_op(bench_prof *p, qt_model *m, int role, ag_tensor *x, ag_tensor *w) {
    const qt_quant *q = &m->quant;
    if (q->format != MX_FP32 && !q->weights_ready) {
        ag_fq_spec spec = {q->format, q->rounding, q->ste, q->weights_via};
        mark(p);
        w = done(p, BENCH_ROLE_FQ, ag_fakequant(p->tape, w, &spec, -1));
    }
    mark(p);
    return done(p, role, ag_linear(p->tape, x, w));
}

/* gpt.c's project: a real projection, or CRoPE's complex-linear one (planes quantized apart). */
static ag_tensor *project_op(bench_prof *p, qt_model *m, int role, ag_tensor *x, ag_tensor *re,
                             ag_tensor *im) {
    if (!im)
        return linear_op(p, m, role, x, re);
    const qt_quant *q = &m->quant;
    if (q->format != MX_FP32 && !q->weights_ready) {
        ag_fq_spec spec = {q->format, q->rounding, q->ste, q->weights_via};
        mark(p);
        re = done(p, BENCH_ROLE_FQ, ag_fakequant(p->tape, re, &spec, -1));
        mark(p);
        im = done(p, BENCH_ROLE_FQ, ag_fakequant(p->tape, im, &spec, -1));
    }
    mark(p);
    return done(p, role, ag_clinear(p->tape, x, re, im));
}

/* gpt.c's attention up to the output projection: the fused q/k/v GEMM (and packed rope) into
 * packed attention, or three projections (CRoPE). a is ln1's output, quantized. */
static ag_tensor *attention_op(bench_prof *p, qt_model *m, qt_block *k, ag_tensor *a) {
    ag_tape *t = p->tape;
    ag_tensor *w3 = a ? qt_block_qkv_weight(t, k) : NULL;
    if (w3) {
        ag_tensor *qkv = linear_op(p, m, BENCH_ROLE_QKV, a, w3);
        if (m->positions == QT_POS_ROPE) {
            mark(p);
            qkv = done(p, BENCH_ROLE_ROPE, ag_rope_packed(t, qkv, m->NH, 0, BENCH_ROPE_BASE));
        }
        mark(p);
        return done(p, BENCH_ROLE_ATTN, ag_attention_packed(t, qkv, m->NH));
    }
    ag_tensor *q = project_op(p, m, BENCH_ROLE_QKV, a, k->wq, k->wq_im);
    ag_tensor *kk = project_op(p, m, BENCH_ROLE_QKV, a, k->wk, k->wk_im);
    ag_tensor *v = project_op(p, m, BENCH_ROLE_QKV, a, k->wv, k->wv_im);
    if (m->positions == QT_POS_ROPE) {
        mark(p);
        q = done(p, BENCH_ROLE_ROPE, ag_rope(t, q, m->NH, 0, BENCH_ROPE_BASE));
        mark(p);
        kk = done(p, BENCH_ROLE_ROPE, ag_rope(t, kk, m->NH, 0, BENCH_ROPE_BASE));
    }
    mark(p);
    return done(p, BENCH_ROLE_ATTN, ag_attention(t, q, kk, v, m->NH));
}

/* The op sequence of qt_model_loss (train/model/gpt.c), one timer per op. */
static ag_tensor *profiled_loss(bench_prof *p, qt_model *m, const int32_t *x, const int32_t *y,
                                int B, int T) {
    ag_tape *t = p->tape;
    mark(p);
    ag_tensor *h = done(p, BENCH_ROLE_EMBED, ag_embedding(t, m->wte, x, B, T)); /* (B,T,C) */
    if (m->wpe) {
        mark(p);
        h = done(p, BENCH_ROLE_EMBED, ag_add(t, h, pos_view(t, m->wpe, T)));
    }
    for (int i = 0; i < m->L; i++) {
        qt_block *k = &m->blocks[i];
        ag_tensor *a = quant_in(p, m, norm_op(p, m, h, k->ln1_w, k->ln1_b));
        ag_tensor *att = attention_op(p, m, k, a);
        ag_tensor *o = project_op(p, m, BENCH_ROLE_WO, quant_in(p, m, att), k->wo, k->wo_im);
        mark(p);
        h = done(p, BENCH_ROLE_RESID, ag_add(t, h, o));
        ag_tensor *u = quant_in(p, m, norm_op(p, m, h, k->ln2_w, k->ln2_b));
        u = linear_op(p, m, BENCH_ROLE_UP, u, k->up);
        mark(p);
        u = quant_in(p, m, done(p, BENCH_ROLE_GELU, ag_gelu(t, u)));
        ag_tensor *d = linear_op(p, m, BENCH_ROLE_DOWN, u, k->down);
        mark(p);
        h = done(p, BENCH_ROLE_RESID, ag_add(t, h, d));
    }
    h = norm_op(p, m, h, m->lnf_w, m->lnf_b);
    ag_tensor *head = m->lm_head ? m->lm_head : m->wte, *logits; /* logits (B,T,V) */
    if (m->quant.head) {
        logits = linear_op(p, m, BENCH_ROLE_HEAD, quant_in(p, m, h), head);
    } else {
        mark(p);
        logits = done(p, BENCH_ROLE_HEAD, ag_linear(t, h, head));
    }
    mark(p);
    return done(p, BENCH_ROLE_XENT, ag_cross_entropy(t, logits, y));
}

/* ag_backward (autograd/tape.c) with a timer per node: ag_backward_prepare first (zero-filled
 * arena grads of every recorded tensor), then the backward functions in reverse. *t_nodes receives
 * the time at which the first node starts. Returns 0 or -1 (arena). */
static int profiled_backward(bench_prof *p, ag_tensor *loss, double *t_nodes, double *c_nodes) {
    ag_tape *t = p->tape;
    size_t n = ag_tape_size(t), used0 = ag_arena_used(ag_tape_arena(t));
    if (ag_backward_prepare(t, loss) != 0)
        return -1;
    p->grad_bytes = ag_arena_used(ag_tape_arena(t)) - used0;
    for (size_t i = 0; i < loss->numel; i++)
        ((float *)loss->grad)[i] = 1.0f;
    *c_nodes = bench_cpu_s();
    *t_nodes = bench_now_s();
    for (size_t i = n; i-- > 0;) {
        /* The tape hands out const nodes; backward functions take them mutable (they are). */
        ag_node *nd = (ag_node *)ag_tape_node(t, i);
        int role = i < p->tag_cap ? p->tag[i] : BENCH_ROLE_XENT;
        double c0 = bench_cpu_s(), t0 = bench_now_s();
        ag_op_backward(nd->op)(nd);
        p->bwd[role] += bench_now_s() - t0;
        p->cpu[role] += bench_cpu_s() - c0;
    }
    return 0;
}

int bench_profiled_step(qt_session *s, bench_prof *p, double lr, double ph[BENCH_PHASE_COUNT],
                        double pc[BENCH_PHASE_COUNT]) {
    double t[BENCH_PHASE_COUNT + 1], c[BENCH_PHASE_COUNT + 1];
    c[0] = bench_cpu_s(), t[0] = bench_now_s();
    mx_format f = qt_format_draw(&s->formats, &s->rng[DATA_STREAM_FORMAT], s->step);
    qt_quant q = qt_format_quant(&s->formats, f);
    qt_model_set_quant(s->model, &q);
    data_sampler_next(s->sampler, s->x, s->y);
    c[1] = bench_cpu_s(), t[1] = bench_now_s();
    ag_tape_reset(s->tape);
    ag_tensor *loss = profiled_loss(p, s->model, s->x, s->y, s->B, s->T);
    c[2] = bench_cpu_s(), t[2] = bench_now_s();
    if (!loss || !isfinite(*(float *)loss->data))
        return -1;
    qt_model_zero_grad(s->model);
    c[3] = bench_cpu_s(), t[3] = bench_now_s();
    if (profiled_backward(p, loss, &t[4], &c[4]) != 0)
        return -1;
    c[5] = bench_cpu_s(), t[5] = bench_now_s();
    opt_clip_grad_norm(s->oparams, s->model->n_params, s->cfg.optim.grad_clip);
    c[6] = bench_cpu_s(), t[6] = bench_now_s();
    opt_step(s->opt, lr);
    s->step++;
    c[7] = bench_cpu_s(), t[7] = bench_now_s();
    for (int i = 0; i < BENCH_PHASE_COUNT; i++) {
        ph[i] = t[i + 1] - t[i];
        pc[i] = c[i + 1] - c[i];
    }
    return 0;
}

bool bench_replica_matches(qt_session *s, bench_prof *p) {
    qt_model *m = s->model;
    size_t nb = m->n_floats * sizeof(float);
    float *g = malloc(nb);
    bool same = false;
    if (!g)
        return false;
    data_rng frng = s->rng[DATA_STREAM_FORMAT]; /* a copy: the run's stream does not move */
    qt_quant q = qt_format_quant(&s->formats, qt_format_draw(&s->formats, &frng, s->step));
    qt_model_set_quant(m, &q);
    data_sampler_next(s->sampler, s->x, s->y);
    ag_tape_reset(s->tape);
    ag_tensor *loss = qt_model_loss(m, s->tape, s->x, s->y, s->B, s->T);
    qt_model_zero_grad(m);
    if (!loss || ag_backward(s->tape, loss, NULL) != 0)
        goto done;
    float l_ref = *(float *)loss->data;
    memcpy(g, m->grad, nb);
    ag_tape_reset(s->tape);
    loss = profiled_loss(p, m, s->x, s->y, s->B, s->T);
    qt_model_zero_grad(m);
    double tn, cn;
    if (!loss || profiled_backward(p, loss, &tn, &cn) != 0)
        goto done;
    float l_cp = *(float *)loss->data;
    same = memcmp(&l_ref, &l_cp, sizeof l_ref) == 0 && memcmp(g, m->grad, nb) == 0;
    if (!same) {
        double maxd = 0;
        for (size_t i = 0; i < m->n_floats; i++)
            maxd = fmax(maxd, fabs((double)g[i] - m->grad[i]));
        printf("WARNING: the profiled copy of the step differs from qt_model_loss+ag_backward "
               "(loss %.9g vs %.9g, max |grad diff| %.3g): gpt.c or tape.c changed; update "
               "profiled_loss/profiled_backward in bench/lib/step_profile.c\n",
               l_ref, l_cp, maxd);
    }
done:
    ag_tape_reset(s->tape);
    qt_model_zero_grad(m);
    memset(p->fwd, 0, sizeof p->fwd);
    memset(p->bwd, 0, sizeof p->bwd);
    memset(p->cpu, 0, sizeof p->cpu);
    free(g);
    return same;
}

double bench_step_lr(const qt_config *c, int64_t total, int64_t step) {
    return opt_schedule_lr((opt_schedule)c->optim.schedule, c->optim.lr, c->optim.min_lr,
                           c->optim.warmup_steps, total, step);
}
