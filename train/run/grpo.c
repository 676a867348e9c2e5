/* grpo.c — the GRPO step (grpo.h): rollouts through the KV cache, group-relative advantages, and
 * `iterations` clipped-surrogate updates over the rollouts with ag_grpo_loss. Every buffer is
 * allocated once by qt_grpo_create; a step allocates nothing outside the tapes' arenas. */
#include "train/run/grpo.h"

#include "train/run/progress.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct qt_grpo {
    int P, G, N;                 /* prompts, group size, sequences N = P·G */
    int Tb;                      /* positions per sequence row: longest prompt + max_new − 1 */
    int max_new;                 /* completion limit */
    data_task_problem *prompts;  /* [P] */
    int32_t *x, *y;              /* [N, Tb]: the sequences, and their completion targets */
    int32_t *comp;               /* [N, max_new] completions */
    int *comp_len;               /* [N] */
    bool *terminated;            /* [N] */
    double *reward, *adv;        /* [N] */
    double *old_logp, *ref_logp; /* [N·Tb] */
    qt_kv_cache *kv;
    qt_sampler sampler;
    float *logits; /* [2V]: the prompt's, and the decode scratch */
    float *ref;    /* full fine-tuning with beta > 0: the starting weights [n_floats]; else NULL */
    float *swap;   /* [n_floats]: the weights put aside while another set is in place */
} qt_grpo;

int qt_grpo_create(qt_session *s, char *err, size_t errlen) {
    const qt_config *c = &s->cfg;
    qt_model *m = s->model;
    qt_grpo *g = calloc(1, sizeof *g);
    if (!g)
        goto oom;
    s->grpo = g;
    g->P = c->grpo.prompts_per_step;
    g->G = c->grpo.group_size;
    g->N = g->P * g->G;
    g->max_new = s->task.max_new;
    /* validated to be <= seq_len */
    g->Tb = (int)data_task_max_prompt_len(&s->task.cfg) + g->max_new - 1;
    size_t N = (size_t)g->N, rows = N * (size_t)g->Tb;
    g->prompts = calloc((size_t)g->P, sizeof *g->prompts);
    g->x = calloc(rows, sizeof *g->x);
    g->y = calloc(rows, sizeof *g->y);
    g->comp = calloc(N * (size_t)g->max_new, sizeof *g->comp);
    g->comp_len = calloc(N, sizeof *g->comp_len);
    g->terminated = calloc(N, sizeof *g->terminated);
    g->reward = calloc(N, sizeof *g->reward);
    g->adv = calloc(N, sizeof *g->adv);
    g->old_logp = calloc(rows, sizeof *g->old_logp);
    g->ref_logp = calloc(rows, sizeof *g->ref_logp);
    g->logits = calloc(2 * (size_t)m->V, sizeof *g->logits);
    g->swap = malloc(m->n_floats * sizeof *g->swap);
    if (c->grpo.beta > 0 && !m->slots && (g->ref = malloc(m->n_floats * sizeof *g->ref)))
        memcpy(g->ref, m->data, m->n_floats * sizeof *g->ref);
    if (!g->prompts || !g->x || !g->y || !g->comp || !g->comp_len || !g->terminated || !g->reward ||
        !g->adv || !g->old_logp || !g->ref_logp || !g->logits || !g->swap ||
        (c->grpo.beta > 0 && !m->slots && !g->ref))
        goto oom;
    if (!(g->kv = qt_kv_create(m, g->Tb, err, errlen)))
        return -1;
    qt_sample_opts so = {c->grpo.temperature, c->grpo.top_k, c->grpo.top_p};
    return qt_sampler_init(&g->sampler, m->V, &so, err, errlen);
oom:
    snprintf(err, errlen, "out of memory for GRPO buffers (%d x %d rollouts)",
             c->grpo.prompts_per_step, c->grpo.group_size);
    return -1;
}

void qt_grpo_free(qt_session *s) {
    qt_grpo *g = s->grpo;
    if (!g)
        return;
    qt_kv_free(g->kv);
    qt_sampler_free(&g->sampler);
    free(g->prompts);
    free(g->x);
    free(g->y);
    free(g->comp);
    free(g->comp_len);
    free(g->terminated);
    free(g->reward);
    free(g->adv);
    free(g->old_logp);
    free(g->ref_logp);
    free(g->logits);
    free(g->ref);
    free(g->swap);
    free(g);
    s->grpo = NULL;
}

/* ---- rollouts -------------------------------------------------------------------------------- */

/* The weights the step's format would fake-quantize, quantized once in place (the originals go to
 * g->swap), so that decoding token by token does not re-quantize every weight at every token. */
static int prequantize(qt_session *s, qt_grpo *g, qt_quant *q) {
    qt_model *m = s->model;
    if (q->format == MX_FP32 || q->weights_ready)
        return 0;
    memcpy(g->swap, m->data, m->n_floats * sizeof *g->swap);
    ag_tape_set_recording(s->tape, false);
    ag_fq_spec spec = {q->format, q->rounding, q->ste, q->weights_via};
    for (size_t i = 0; i < m->n_params; i++) {
        qt_param *p = &m->params[i];
        if (!qt_model_param_quantized(m, p, q->head))
            continue;
        ag_tape_reset(s->tape);
        ag_tensor *w = ag_fakequant(s->tape, &p->t, &spec, -1);
        if (!w) {
            ag_tape_set_recording(s->tape, true);
            return -1;
        }
        memcpy(p->t.data, w->data, p->t.numel * sizeof(float));
    }
    ag_tape_reset(s->tape);
    ag_tape_set_recording(s->tape, true);
    q->weights_ready = true;
    return 0;
}

/* G completions of each prompt: the prompt is fed once, then each completion restarts from it. */
static int rollout(qt_session *s, qt_grpo *g, char *err, size_t errlen) {
    qt_kv_cache *kv = g->kv;
    int V = s->model->V;
    for (int p = 0; p < g->P; p++) {
        const data_task_problem *pb = &g->prompts[p];
        int32_t prompt[DATA_TASK_PROMPT_CAP];
        data_encode(pb->prompt, pb->prompt_len, prompt);
        qt_kv_reset(kv);
        if (qt_kv_step(kv, prompt, (int)pb->prompt_len, g->logits, err, errlen) != 0)
            return -1;
        for (int j = 0; j < g->G; j++) {
            int i = p * g->G + j;
            /* Forget the previous completion: its cached rows sit after the prompt's and are
             * overwritten by this one's. */
            kv->len = (int)pb->prompt_len;
            if (qt_task_complete(kv, &g->sampler, &s->rng[DATA_STREAM_SAMPLE], g->logits,
                                 g->max_new, g->comp + (size_t)i * g->max_new, &g->comp_len[i],
                                 &g->terminated[i], g->logits + V, err, errlen) != 0)
                return -1;
        }
    }
    return 0;
}

/* Sample standard deviation of x[0..n) (n >= 2). */
static double sample_std(const double *x, int n, double mean) {
    double sq = 0;
    for (int i = 0; i < n; i++)
        sq += (x[i] - mean) * (x[i] - mean);
    return sqrt(sq / (n - 1));
}

static double mean_of(const double *x, int n) {
    double s = 0;
    for (int i = 0; i < n; i++)
        s += x[i];
    return s / n;
}

void qt_grpo_advantages(const double *reward, int P, int G, qt_grpo_scale scale, double *adv,
                        double *mean, double *std) {
    int N = P * G;
    *mean = mean_of(reward, N);
    *std = sample_std(reward, N, *mean);
    for (int p = 0; p < P; p++) {
        const double *r = reward + (size_t)p * G;
        double gm = mean_of(r, G);
        double d = scale == QT_GRPO_SCALE_GROUP   ? sample_std(r, G, gm) + 1e-4
                   : scale == QT_GRPO_SCALE_BATCH ? *std + 1e-4
                                                  : 1.0;
        for (int j = 0; j < G; j++)
            adv[(size_t)p * G + j] = (r[j] - gm) / d;
    }
}

/* Each completion's exact-match reward, then the advantages. */
static void advantages(const qt_session *s, qt_grpo *g, qt_grpo_result *r) {
    uint8_t bytes[64]; /* answers are at most 19 digits: a longer completion scores 0 anyway */
    for (int i = 0; i < g->N; i++) {
        int n = g->comp_len[i] < 64 ? g->comp_len[i] : 64;
        for (int k = 0; k < n; k++)
            bytes[k] = (uint8_t)g->comp[(size_t)i * g->max_new + k];
        g->reward[i] = data_task_reward(&g->prompts[i / g->G], bytes, (size_t)n);
    }
    qt_grpo_advantages(g->reward, g->P, g->G, s->cfg.grpo.scale_rewards, g->adv, &r->reward_mean,
                       &r->reward_std);
}

/* Row i: prompt + completion, targets on the completion tokens only (none for a truncated
 * completion under mask_truncated). */
static void build_rows(const qt_session *s, qt_grpo *g, qt_grpo_result *r) {
    int64_t comp = 0, trunc = 0;
    for (int i = 0; i < g->N; i++) {
        const data_task_problem *pb = &g->prompts[i / g->G];
        int32_t *x = g->x + (size_t)i * g->Tb, *y = g->y + (size_t)i * g->Tb;
        const int32_t *c = g->comp + (size_t)i * g->max_new;
        int P = (int)pb->prompt_len, n = g->comp_len[i], L = P + n;
        bool masked = s->cfg.grpo.mask_truncated && !g->terminated[i];
        for (int t = 0; t < g->Tb; t++) {
            x[t] = t < P ? (int32_t)(uint8_t)pb->prompt[t] : t < L ? c[t - P] : DATA_TASK_PAD;
            y[t] = !masked && t + 1 >= P && t + 1 < L ? c[t + 1 - P] : -1;
        }
        comp += n;
        trunc += !g->terminated[i];
    }
    r->completion_len = (double)comp / g->N;
    r->truncated = (double)trunc / g->N;
}

/* ---- log-probs and updates ---------------------------------------------------------------------
 */

/* out[N·Tb] = log-probs of the targets under the current weights (tape not recording). */
static int logprobs(qt_session *s, qt_grpo *g, double *out) {
    ag_tape_set_recording(s->tape, false);
    ag_tape_reset(s->tape);
    ag_tensor *lg = qt_model_logits(s->model, s->tape, g->x, g->N, g->Tb);
    if (lg)
        ag_token_logprobs(lg, g->y, out);
    ag_tape_reset(s->tape);
    ag_tape_set_recording(s->tape, true);
    return lg ? 0 : -1;
}

/* The reference policy's log-probs: the starting weights swapped in, or the adapters switched off.
 */
static int ref_logprobs(qt_session *s, qt_grpo *g) {
    qt_model *m = s->model;
    if (m->slots) {
        double scale = m->lora_scale;
        m->lora_scale = 0;
        int rc = logprobs(s, g, g->ref_logp);
        m->lora_scale = scale;
        return rc;
    }
    memcpy(g->swap, m->data, m->n_floats * sizeof *g->swap);
    memcpy(m->data, g->ref, m->n_floats * sizeof *g->ref);
    int rc = logprobs(s, g, g->ref_logp);
    memcpy(m->data, g->swap, m->n_floats * sizeof *g->swap);
    return rc;
}

static const char *last_ckpt(const qt_session *s) {
    return s->last_ckpt[0] ? s->last_ckpt : "none";
}

/* One optimizer update on the rollouts. */
static int update(qt_session *s, qt_grpo *g, double lr, const ag_grpo_spec *spec, double *loss,
                  double *gnorm, ag_grpo_stats *st) {
    s->model->dropout_seed = data_rng_next(&s->rng[DATA_STREAM_DROPOUT]);
    ag_tape_reset(s->tape);
    ag_tensor *lg = qt_model_logits(s->model, s->tape, g->x, g->N, g->Tb);
    ag_tensor *l = lg ? ag_grpo_loss(s->tape, lg, g->y, spec, st) : NULL;
    if (!l) {
        fprintf(stderr, "\nqat-train: step %lld: %s\n", (long long)s->step + 1,
                ag_tape_error(s->tape));
        return QT_EXIT_INTERNAL;
    }
    *loss = *(float *)l->data;
    if (!isfinite(*loss)) {
        fprintf(stderr,
                "\nqat-train: GRPO loss is %g at step %lld; stopping (last good "
                "checkpoint: %s)\n",
                *loss, (long long)s->step + 1, last_ckpt(s));
        return QT_EXIT_NUMERIC;
    }
    qt_model_zero_grad(s->model);
    if (ag_backward(s->tape, l, NULL) != 0) {
        fprintf(stderr, "\nqat-train: backward failed: %s\n", ag_tape_error(s->tape));
        return QT_EXIT_INTERNAL;
    }
    *gnorm = opt_clip_grad_norm(s->oparams, s->n_oparams, s->cfg.optim.grad_clip);
    if (!isfinite(*gnorm)) {
        fprintf(stderr,
                "\nqat-train: gradient norm is %g at step %lld; stopping (last good "
                "checkpoint: %s)\n",
                *gnorm, (long long)s->step + 1, last_ckpt(s));
        return QT_EXIT_NUMERIC;
    }
    opt_step(s->opt, lr);
    return QT_EXIT_OK;
}

static ag_grpo_agg agg_of(qt_grpo_loss l) {
    return l == QT_GRPO_LOSS_DR_GRPO ? AG_GRPO_CONST_NORM
           : l == QT_GRPO_LOSS_DAPO  ? AG_GRPO_TOKEN_MEAN
                                     : AG_GRPO_SEQ_MEAN;
}

/* Rollouts at the step's format, with the weights quantized once for the whole decode. */
static int sample_step(qt_session *s, qt_grpo *g, qt_quant q, char *err, size_t errlen) {
    if (data_task_prompts(&s->task.cfg, &s->rng[DATA_STREAM_DATA], (size_t)g->P, s->task.held_out,
                          s->task.n_held_out, g->prompts, err, errlen) != 0)
        return QT_EXIT_DATA;
    bool swapped = q.format != MX_FP32 && !q.weights_ready;
    int rc = QT_EXIT_INTERNAL;
    if (prequantize(s, g, &q) != 0) {
        snprintf(err, errlen, "quantizing the weights for rollouts: %s", ag_tape_error(s->tape));
    } else {
        qt_model_set_quant(s->model, &q);
        rc = rollout(s, g, err, errlen) == 0 ? QT_EXIT_OK : QT_EXIT_INTERNAL;
    }
    if (swapped) /* the float weights back, whatever happened */
        memcpy(s->model->data, g->swap, s->model->n_floats * sizeof *g->swap);
    return rc;
}

int64_t qt_grpo_tokens_per_step(const qt_session *s) { return (int64_t)s->grpo->N * s->grpo->Tb; }

int qt_grpo_step(qt_session *s, double lr, qt_grpo_result *r) {
    qt_grpo *g = s->grpo;
    const qt_config *c = &s->cfg;
    double t0 = qt_now();
    char err[1024];
    memset(r, 0, sizeof *r);
    r->format = qt_format_draw(&s->formats, &s->rng[DATA_STREAM_FORMAT], s->step);
    qt_quant q = qt_format_quant(&s->formats, r->format);
    int rc = sample_step(s, g, q, err, sizeof err);
    if (rc != QT_EXIT_OK) {
        fprintf(stderr, "\nqat-train: step %lld: %s\n", (long long)s->step + 1, err);
        return rc;
    }
    qt_model_set_quant(s->model, &q);
    advantages(s, g, r);
    build_rows(s, g, r);
    bool kl = c->grpo.beta > 0, old = c->grpo.iterations > 1;
    if ((kl && ref_logprobs(s, g) != 0) || (old && logprobs(s, g, g->old_logp) != 0)) {
        fprintf(stderr, "\nqat-train: step %lld: %s\n", (long long)s->step + 1,
                ag_tape_error(s->tape));
        return QT_EXIT_INTERNAL;
    }
    ag_grpo_spec spec = {.adv = g->adv,
                         .old_logp = old ? g->old_logp : NULL,
                         .ref_logp = kl ? g->ref_logp : NULL,
                         .eps_low = c->grpo.epsilon,
                         .eps_high = c->grpo.epsilon_high,
                         .beta = c->grpo.beta,
                         .agg = agg_of(c->grpo.loss_type),
                         .max_len = g->max_new,
                         .n_seq = g->N};
    for (int it = 0; it < c->grpo.iterations; it++) {
        ag_grpo_stats st;
        double loss, gnorm;
        if ((rc = update(s, g, lr, &spec, &loss, &gnorm, &st)) != QT_EXIT_OK)
            return rc;
        r->loss += loss / c->grpo.iterations;
        r->grad_norm += gnorm / c->grpo.iterations;
        r->kl += st.kl_mean / c->grpo.iterations;
        r->clip_frac += st.clip_frac / c->grpo.iterations;
    }
    s->step++;
    r->seconds = qt_now() - t0;
    return QT_EXIT_OK;
}
