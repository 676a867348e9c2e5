/* ptq.c — qat-ptq's pipeline: load a training checkpoint's float weights, calibrate on training
 * windows, SmoothQuant and RTN/GPTQ from quant/ptq.h, and collect the result as a kind "ptq" file
 * (see ptq.h for the method choices). */
#include "train/run/ptq.h"

#include "quant/ptq.h"
#include "train/run/evaluate.h"
#include "train/run/progress.h"
#include "train/run/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct ptq_run {
    const qt_ptq_opts *o;
    qt_evaluator e;
    qt_model *m;
    bool smooth, gptq, acts, head;
    mx_rounding rounding;
    double t0;
    /* per parameter (model order): codes and scales of the quantized weights */
    uint8_t **codes, **scales;
    /* calibration observers' state */
    float **absmax;        /* smoothing pass: per parameter, [in] or NULL */
    const ag_tensor *h_of; /* GPTQ pass: the weight whose input is measured */
    ptq_hessian *hessian;  /* ... into this */
    int observe_failed;    /* first ptq_status an observer met, 0 if none */
} ptq_run;

int qt_ptq_method_parse(const char *method, bool *smooth, bool *gptq) {
    static const char *const names[4] = {"rtn", "gptq", "smoothquant+rtn", "smoothquant+gptq"};
    for (int i = 0; i < 4; i++)
        if (method && strcmp(method, names[i]) == 0) {
            *smooth = i >= 2;
            *gptq = i % 2 == 1;
            return 0;
        }
    return -1;
}

static void progress(const ptq_run *r, const char *what) {
    if (!r->o->log)
        return;
    fprintf(r->o->log, "qat-ptq: %s (%.1f s)\n", what, qt_now() - r->t0);
    fflush(r->o->log);
}

static size_t param_index(const qt_model *m, const ag_tensor *w) {
    for (size_t i = 0; i < m->n_params; i++)
        if (&m->params[i].t == w)
            return i;
    return m->n_params;
}

/* ---- calibration passes ---- */

static void observe_absmax(void *ctx, const ag_tensor *w, const ag_tensor *x) {
    ptq_run *r = ctx;
    size_t i = param_index(r->m, w);
    if (i < r->m->n_params && r->absmax[i])
        ptq_absmax_cols(x->data, ag_rows(x), ag_cols(x), r->absmax[i]);
}

static void observe_hessian(void *ctx, const ag_tensor *w, const ag_tensor *x) {
    ptq_run *r = ctx;
    int st = w == r->h_of ? ptq_hessian_add(r->hessian, x->data, ag_rows(x)) : PTQ_OK;
    if (st != PTQ_OK && !r->observe_failed)
        r->observe_failed = st;
}

/* Forward passes over the calibration windows with quantization q and observer fn. */
static int calib_pass(ptq_run *r, const qt_quant *q, qt_linear_observer fn, char *err,
                      size_t errlen) {
    qt_evaluator *e = &r->e;
    qt_model_set_quant(r->m, q);
    r->m->observe = fn;
    r->m->observe_ctx = r;
    int rc = 0;
    /* Batches spread over the whole training split (it concatenates the corpus files in order):
     * the first windows alone would come from one or two files. */
    size_t avail = data_val_batch_count(e->split.n_train, (size_t)e->B, (size_t)e->T);
    size_t n = (size_t)r->o->calib_batches, stride = avail > n ? avail / n : 1;
    for (size_t b = 0; b < n && rc == 0; b++) {
        data_val_batch(e->split.train, e->split.n_train, (size_t)e->B, (size_t)e->T, b * stride,
                       e->x, e->y);
        ag_tape_reset(e->tape);
        if (!qt_model_logits(r->m, e->tape, e->x, e->B, e->T)) {
            snprintf(err, errlen, "calibration forward pass failed: %s", ag_tape_error(e->tape));
            rc = -1;
        }
    }
    ag_tape_reset(e->tape);
    r->m->observe = NULL;
    if (rc == 0 && r->observe_failed) {
        snprintf(err, errlen, "calibration statistics: %s%s",
                 ptq_status_to_string(r->observe_failed),
                 r->observe_failed == PTQ_ERR_NONFINITE ? " in a layer's input activations" : "");
        rc = -1;
    }
    return rc;
}

/* ---- SmoothQuant ---- */

/* Smooth the input shared by ws[0..n) (read from the norm with weight g and bias b, b may be
 * NULL) given its per-channel activation maxima amax. */
static int smooth_group(ag_tensor *g, ag_tensor *b, ag_tensor **ws, int n, const float *amax,
                        double alpha) {
    size_t C = (size_t)g->numel;
    float *wmax = calloc(C, sizeof *wmax), *s = malloc(C * sizeof *s);
    int rc = -1;
    if (!wmax || !s)
        goto done;
    for (int k = 0; k < n; k++)
        ptq_absmax_cols(ws[k]->data, (size_t)ws[k]->shape[0], C, wmax);
    if (ptq_smooth_scales(amax, wmax, C, alpha, s) != PTQ_OK)
        goto done;
    ptq_div_vec(g->data, s, C);
    if (b)
        ptq_div_vec(b->data, s, C);
    for (int k = 0; k < n; k++)
        ptq_scale_cols(ws[k]->data, (size_t)ws[k]->shape[0], C, s);
    rc = 0;
done:
    free(wmax);
    free(s);
    return rc;
}

int qt_ptq_smooth_block(qt_model *m, int block, const float *attn_amax, const float *mlp_amax,
                        double alpha) {
    if (block < 0 || block >= m->L || !attn_amax || !mlp_amax || !(alpha >= 0 && alpha <= 1))
        return -1;
    qt_block *k = &m->blocks[block];
    ag_tensor *qkv[3] = {k->wq, k->wk, k->wv};
    if (smooth_group(k->ln1_w, k->ln1_b, qkv, 3, attn_amax, alpha) != 0)
        return -1;
    return smooth_group(k->ln2_w, k->ln2_b, &k->up, 1, mlp_amax, alpha);
}

static int smoothquant(ptq_run *r, char *err, size_t errlen) {
    qt_model *m = r->m;
    int rc = -1;
    if (!(r->absmax = calloc(m->n_params, sizeof *r->absmax)))
        goto oom;
    for (int i = 0; i < m->L; i++) {
        qt_block *k = &m->blocks[i];
        ag_tensor *first[2] = {k->wq, k->up};
        for (int j = 0; j < 2; j++) {
            size_t pi = param_index(m, first[j]);
            if (!(r->absmax[pi] = calloc((size_t)m->C, sizeof(float))))
                goto oom;
        }
    }
    qt_quant fp = {.format = MX_FP32};
    if (calib_pass(r, &fp, observe_absmax, err, errlen) != 0)
        goto done;
    for (int i = 0; i < m->L; i++) {
        qt_block *k = &m->blocks[i];
        if (qt_ptq_smooth_block(m, i, r->absmax[param_index(m, k->wq)],
                                r->absmax[param_index(m, k->up)], r->o->alpha) != 0)
            goto oom;
    }
    progress(r, "smoothquant: the inputs of q,k,v and up smoothed in every block");
    rc = 0;
    goto done;
oom:
    snprintf(err, errlen, "out of memory for SmoothQuant statistics");
done:
    for (size_t i = 0; r->absmax && i < m->n_params; i++)
        free(r->absmax[i]);
    free(r->absmax);
    r->absmax = NULL;
    return rc;
}

/* ---- quantizing the weights ---- */

static int alloc_codes(ptq_run *r, size_t pi) {
    const ag_tensor *w = &r->m->params[pi].t;
    size_t rows = (size_t)w->shape[0], cols = (size_t)w->shape[1];
    r->codes[pi] = malloc(rows * cols);
    r->scales[pi] = malloc(rows * mx_num_blocks(cols));
    return r->codes[pi] && r->scales[pi] ? 0 : -1;
}

static int rtn_all(ptq_run *r, char *err, size_t errlen) {
    qt_model *m = r->m;
    for (size_t pi = 0; pi < m->n_params; pi++) {
        qt_param *p = &m->params[pi];
        if (!qt_model_param_quantized(m, p, r->head))
            continue;
        if (alloc_codes(r, pi) != 0) {
            snprintf(err, errlen, "out of memory quantizing %s", p->name);
            return QT_EXIT_INTERNAL;
        }
        ptq_rtn(p->t.data, (size_t)p->t.shape[0], (size_t)p->t.shape[1], r->o->format, r->rounding,
                r->codes[pi], r->scales[pi], NULL);
    }
    progress(r, "rtn: every quantized weight rounded to the nearest grid value");
    return QT_EXIT_OK;
}

/* GPTQ of the weights ws[0..n) that read one input: its Hessian from a calibration pass in
 * which everything quantized so far runs quantized; then each weight, replaced in the model by
 * its quantized values so that later groups calibrate on them. */
static int gptq_group(ptq_run *r, ag_tensor **ws, int n, const qt_quant *q, char *err,
                      size_t errlen) {
    qt_model *m = r->m;
    size_t in = (size_t)ws[0]->shape[1];
    if (!(r->hessian = ptq_hessian_create(in))) {
        snprintf(err, errlen, "out of memory for a %zu x %zu Hessian", in, in);
        return QT_EXIT_INTERNAL;
    }
    r->h_of = ws[0];
    int rc = QT_EXIT_INTERNAL;
    double *H = malloc(in * in * sizeof *H);
    if (!H) {
        snprintf(err, errlen, "out of memory for a %zu x %zu Hessian", in, in);
        goto done;
    }
    if (calib_pass(r, q, observe_hessian, err, errlen) != 0)
        goto done;
    if (ptq_hessian_get(r->hessian, H) != PTQ_OK) {
        snprintf(err, errlen, "no calibration activations reached %s",
                 m->params[param_index(m, ws[0])].name);
        goto done;
    }
    for (int k = 0; k < n; k++) {
        size_t pi = param_index(m, ws[k]);
        qt_param *p = &m->params[pi];
        size_t rows = (size_t)p->t.shape[0], cols = (size_t)p->t.shape[1];
        ptq_gptq_opts go = ptq_gptq_default_opts();
        ptq_gptq_info info;
        go.damp = r->o->damp;
        if (alloc_codes(r, pi) != 0) {
            snprintf(err, errlen, "out of memory quantizing %s", p->name);
            goto done;
        }
        char why[256];
        if (ptq_gptq(p->t.data, rows, cols, H, r->o->format, r->rounding, &go, r->codes[pi],
                     r->scales[pi], p->t.data, &info, why, sizeof why) != 0) {
            snprintf(err, errlen, "GPTQ of %s failed: %s", p->name, why);
            rc = QT_EXIT_NUMERIC;
            goto done;
        }
        if (r->o->log) {
            fprintf(r->o->log, "qat-ptq: gptq %-18s [%zu x %zu] damp %.3g (%.1f s)\n", p->name,
                    rows, cols, info.damp, qt_now() - r->t0);
            fflush(r->o->log);
        }
    }
    rc = QT_EXIT_OK;
done:
    free(H);
    ptq_hessian_free(r->hessian);
    r->hessian = NULL;
    r->h_of = NULL;
    return rc;
}

static int gptq_all(ptq_run *r, char *err, size_t errlen) {
    qt_model *m = r->m;
    /* Weights already quantized hold their quantized values: never re-quantize them. */
    qt_quant q = {.format = r->o->format,
                  .rounding = r->rounding,
                  .ste = AG_STE_IDENTITY,
                  .weights_via = MX_FP32,
                  .weights_ready = true,
                  .activations = r->acts,
                  .head = r->head};
    int rc = QT_EXIT_OK;
    for (int i = 0; i < m->L && rc == QT_EXIT_OK; i++) {
        qt_block *k = &m->blocks[i];
        ag_tensor *qkv[3] = {k->wq, k->wk, k->wv};
        if ((rc = gptq_group(r, qkv, 3, &q, err, errlen)) == QT_EXIT_OK &&
            (rc = gptq_group(r, &k->wo, 1, &q, err, errlen)) == QT_EXIT_OK &&
            (rc = gptq_group(r, &k->up, 1, &q, err, errlen)) == QT_EXIT_OK)
            rc = gptq_group(r, &k->down, 1, &q, err, errlen);
    }
    if (rc == QT_EXIT_OK && r->head) {
        ag_tensor *head = m->lm_head ? m->lm_head : m->wte;
        rc = gptq_group(r, &head, 1, &q, err, errlen);
    }
    return rc;
}

/* ---- result ---- */

static int collect(ptq_run *r, const qt_ckpt *ck, qt_anchor_ckpt *a, char *err, size_t errlen) {
    qt_model *m = r->m;
    memset(a, 0, sizeof *a);
    a->format = r->o->format;
    a->source = MX_FP32;
    a->rounding = r->rounding;
    snprintf(a->ptq_method, sizeof a->ptq_method, "%s", r->o->method);
    a->ptq_alpha = r->smooth ? r->o->alpha : 0;
    a->ptq_calib_batches = r->smooth || r->gptq ? r->o->calib_batches : 0;
    a->step = ck->step;
    a->model_hash = ck->model_hash;
    const char *cfg = ck->config_text ? ck->config_text : "";
    if (!(a->config_text = malloc(strlen(cfg) + 1)) ||
        !(a->t = calloc(m->n_params ? m->n_params : 1, sizeof *a->t)))
        goto oom;
    strcpy(a->config_text, cfg);
    for (size_t i = 0; i < m->n_params; i++) {
        const qt_param *p = &m->params[i];
        qt_anchor_tensor *t = &a->t[a->n++];
        snprintf(t->name, sizeof t->name, "%s", p->name);
        t->ndim = p->t.ndim;
        for (int d = 0; d < p->t.ndim; d++)
            t->shape[d] = p->t.shape[d];
        if (r->codes[i]) { /* ownership moves to the file */
            t->quantized = true;
            t->codes = r->codes[i];
            t->scales = r->scales[i];
            r->codes[i] = r->scales[i] = NULL;
            continue;
        }
        if (!(t->data = malloc(p->t.numel * sizeof *t->data)))
            goto oom;
        memcpy(t->data, p->t.data, p->t.numel * sizeof *t->data);
    }
    return QT_EXIT_OK;
oom:
    snprintf(err, errlen, "out of memory collecting the quantized model");
    qt_anchor_free(a);
    return QT_EXIT_INTERNAL;
}

static int check_opts(const qt_ptq_opts *o, bool *smooth, bool *gptq, char *err, size_t errlen) {
    if (qt_ptq_method_parse(o->method, smooth, gptq) != 0) {
        snprintf(err, errlen,
                 "unknown method '%s' (expected rtn, gptq, smoothquant+rtn or smoothquant+gptq)",
                 o->method ? o->method : "");
        return -1;
    }
    if (!mx_format_is_mx(o->format)) {
        snprintf(err, errlen, "the format must be an MX format, not %s", mx_format_name(o->format));
        return -1;
    }
    if (o->calib_batches < 1 || !(o->alpha >= 0 && o->alpha <= 1) || !(o->damp > 0)) {
        snprintf(err, errlen, "calib_batches must be >= 1, alpha in [0, 1] and damp > 0");
        return -1;
    }
    return 0;
}

static int open_run(ptq_run *r, const qt_ckpt *ck, const char *path, char *err, size_t errlen) {
    if (ck->kind != QT_CKPT_TRAIN) {
        snprintf(err, errlen,
                 "%s: is a '%s' checkpoint; post-training quantization starts from the float "
                 "weights of a training checkpoint",
                 path, qt_ckpt_kind_name(ck->kind));
        return QT_EXIT_CKPT;
    }
    qt_eval_opts eo = {.config_text = ck->config_text, .origin = path, .corpus = r->o->corpus};
    int rc = qt_evaluator_open(&r->e, &eo, err, errlen);
    if (rc != QT_EXIT_OK)
        return rc;
    r->m = r->e.model;
    if (qt_config_model_hash(&r->e.cfg) != ck->model_hash) {
        snprintf(err, errlen, "%s: model_hash does not match the stored [model] config", path);
        return QT_EXIT_CKPT;
    }
    if (qt_model_load_params(r->m, ck, path, err, errlen) != 0)
        return QT_EXIT_CKPT;
    if (r->m->slots) {
        snprintf(err, errlen,
                 "%s: a QLoRA checkpoint holds adapters on a frozen base; fold them in first "
                 "(qat-merge --adapters %s --out merged.h5) and quantize the merged file",
                 path, path);
        return QT_EXIT_USAGE;
    }
    if (r->m->crope && (r->gptq || r->smooth)) {
        snprintf(err, errlen,
                 "%s: the model uses CRoPE attention (model.attention = crope), whose complex "
                 "projections GPTQ and SmoothQuant do not handle here; use --method rtn",
                 path);
        return QT_EXIT_USAGE;
    }
    const qt_config *c = &r->e.cfg;
    int what = r->o->quantize < 0 ? (int)c->quant.quantize : r->o->quantize;
    r->acts = what == QT_QUANTIZE_WEIGHTS_ACTS;
    r->head = c->quant.quantize_head;
    r->rounding = (mx_rounding)c->quant.rounding;
    r->codes = calloc(r->m->n_params, sizeof *r->codes);
    r->scales = calloc(r->m->n_params, sizeof *r->scales);
    if (!r->codes || !r->scales) {
        snprintf(err, errlen, "out of memory");
        return QT_EXIT_INTERNAL;
    }
    return QT_EXIT_OK;
}

static void close_run(ptq_run *r) {
    for (size_t i = 0; r->m && i < r->m->n_params; i++) {
        if (r->codes)
            free(r->codes[i]);
        if (r->scales)
            free(r->scales[i]);
    }
    free(r->codes);
    free(r->scales);
    qt_evaluator_close(&r->e);
}

int qt_ptq_run(const qt_ckpt *ck, const char *path, const qt_ptq_opts *o, qt_anchor_ckpt *out,
               char *err, size_t errlen) {
    ptq_run r = {.o = o, .t0 = qt_now()};
    memset(out, 0, sizeof *out);
    if (check_opts(o, &r.smooth, &r.gptq, err, errlen) != 0)
        return QT_EXIT_USAGE;
    int rc = open_run(&r, ck, path, err, errlen);
    if (rc == QT_EXIT_OK && r.smooth && smoothquant(&r, err, errlen) != 0)
        rc = QT_EXIT_INTERNAL;
    if (rc == QT_EXIT_OK)
        rc = r.gptq ? gptq_all(&r, err, errlen) : rtn_all(&r, err, errlen);
    if (rc == QT_EXIT_OK)
        rc = collect(&r, ck, out, err, errlen);
    close_run(&r);
    return rc;
}
