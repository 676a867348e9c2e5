/* evaluate.c — the evaluator (a model rebuilt from a stored config, its fixed validation batches)
 * and the per-format rows: from an anchor by Slice-and-Scale, or by direct quantization. */
#include "train/run/evaluate.h"

#include "train/run/init.h"
#include "train/run/progress.h"
#include "train/run/train.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static int load_config(qt_evaluator *e, const qt_eval_opts *o, char *err, size_t errlen) {
    char perr[1024];
    const char *origin = o->origin ? o->origin : "stored config";
    if (qt_config_defaults(&e->cfg) != 0) {
        snprintf(err, errlen, "out of memory");
        return QT_EXIT_INTERNAL;
    }
    if (qt_config_load_string(&e->cfg, o->config_text ? o->config_text : "", origin, perr,
                              sizeof perr) != 0 ||
        qt_config_validate(&e->cfg, perr, sizeof perr) != 0) {
        snprintf(err, errlen, "%s: the stored config is not usable: %s", origin, perr);
        return QT_EXIT_CKPT;
    }
    return QT_EXIT_OK;
}

static int load_data(qt_evaluator *e, const qt_eval_opts *o, char *err, size_t errlen) {
    if (e->cfg.run.mode != QT_MODE_PRETRAIN) {
        if (qt_task_open(&e->task, &e->cfg, err, errlen) != 0)
            return QT_EXIT_CKPT;
        return QT_EXIT_OK;
    }
    if (o->val) {
        e->val = o->val;
        e->n_val = o->n_val;
        return QT_EXIT_OK;
    }
    const char *corpus = o->corpus ? o->corpus : e->cfg.data.corpus;
    if (data_corpus_load(corpus, &e->corpus, err, errlen) != 0 ||
        data_split_make(e->corpus.bytes, e->corpus.n_bytes, e->cfg.data.val_fraction, (size_t)e->T,
                        corpus, &e->split, err, errlen) != 0)
        return QT_EXIT_DATA;
    e->val = e->split.val;
    e->n_val = e->split.n_val;
    return QT_EXIT_OK;
}

int qt_evaluator_open(qt_evaluator *e, const qt_eval_opts *o, char *err, size_t errlen) {
    memset(e, 0, sizeof *e);
    int rc = load_config(e, o, err, errlen);
    if (rc != QT_EXIT_OK)
        goto fail;
    e->B = e->cfg.data.batch_size;
    e->T = e->cfg.model.seq_len;
    if (!o->val)
        omp_set_num_threads(e->cfg.run.threads > 0 ? e->cfg.run.threads : omp_get_num_procs());
    if ((rc = load_data(e, o, err, errlen)) != QT_EXIT_OK)
        goto fail;
    size_t avail = e->task.held_out ? qt_task_val_batches(&e->task, e->B)
                                    : data_val_batch_count(e->n_val, (size_t)e->B, (size_t)e->T);
    size_t want = o->batches > 0 ? (size_t)o->batches : (size_t)e->cfg.run.eval_batches;
    e->n_batches = want < avail && !e->task.held_out ? want : avail; /* tasks: every problem */
    if (e->n_batches == 0) {
        snprintf(err, errlen, "validation split of %zu bytes holds no window of %d tokens",
                 e->n_val, e->T + 1);
        rc = QT_EXIT_DATA;
        goto fail;
    }
    rc = QT_EXIT_INTERNAL;
    if (!(e->model = qt_model_create(&e->cfg, err, errlen)))
        goto fail;
    /* A QLoRA run's checkpoint holds the adapters only: its frozen base comes from lora.init_from.
     */
    if (e->cfg.lora.enabled && (rc = qt_lora_load_base(e->model, &e->cfg, e->cfg.lora.init_from,
                                                       err, errlen)) != QT_EXIT_OK)
        goto fail;
    rc = QT_EXIT_INTERNAL;
    e->x = calloc((size_t)e->B * (size_t)e->T, sizeof *e->x);
    e->y = calloc((size_t)e->B * (size_t)e->T, sizeof *e->y);
    e->tape = ag_tape_create((size_t)64 << 20, 0, 1 << 14);
    if (!e->x || !e->y || !e->tape) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    ag_tape_set_recording(e->tape, false);
    return QT_EXIT_OK;
fail:
    qt_evaluator_close(e);
    return rc;
}

void qt_evaluator_close(qt_evaluator *e) {
    if (!e)
        return;
    ag_tape_free(e->tape);
    free(e->x);
    free(e->y);
    qt_model_free(e->model);
    data_split_free(&e->split);
    data_corpus_free(&e->corpus);
    qt_task_close(&e->task);
    qt_config_free(&e->cfg);
    memset(e, 0, sizeof *e);
}

int qt_evaluator_loss(qt_evaluator *e, const qt_quant *q, double *loss, char *err, size_t errlen) {
    qt_model_set_quant(e->model, q);
    double sum = 0, weight = 0;
    for (size_t b = 0; b < e->n_batches; b++) {
        double w = 1; /* task batches count by their answer tokens */
        if (e->task.held_out)
            w = (double)qt_task_val_batch(&e->task, b, e->B, e->T, e->x, e->y);
        else
            data_val_batch(e->val, e->n_val, (size_t)e->B, (size_t)e->T, b, e->x, e->y);
        ag_tape_reset(e->tape);
        ag_tensor *l = qt_model_loss(e->model, e->tape, e->x, e->y, e->B, e->T);
        if (!l) {
            snprintf(err, errlen, "evaluation at %s failed: %s", mx_format_name(q->format),
                     ag_tape_error(e->tape));
            ag_tape_reset(e->tape);
            return -1;
        }
        sum += w * *(float *)l->data;
        weight += w;
    }
    ag_tape_reset(e->tape);
    *loss = sum / weight;
    return 0;
}

/* The row's loss and, for a task model, its held-out accuracy at the same quantization. */
static int row_eval(qt_evaluator *e, const qt_quant *q, qt_eval_row *r, char *err, size_t errlen) {
    r->has_accuracy = false;
    if (qt_evaluator_loss(e, q, &r->loss, err, errlen) != 0)
        return -1;
    if (!e->task.held_out)
        return 0;
    char why[1024];
    if (qt_task_accuracy(&e->task, e->model, &r->accuracy, why, sizeof why) != 0) {
        snprintf(err, errlen, "held-out accuracy at %s: %s", mx_format_name(q->format), why);
        return -1;
    }
    r->has_accuracy = true;
    return 0;
}

static void progress(FILE *log, const char *prog, int i, int n, const qt_eval_row *r, double t0) {
    if (!log)
        return;
    char acc[48] = "";
    if (r->has_accuracy)
        snprintf(acc, sizeof acc, ", accuracy %.1f%%", 100 * r->accuracy);
    if (isnan(r->loss))
        fprintf(log, "%s: [%d/%d] %-11s skipped: %s\n", prog, i + 1, n, mx_format_name(r->format),
                r->note);
    else
        fprintf(log, "%s: [%d/%d] %-11s val_loss %.4f%s (%.1f s)\n", prog, i + 1, n,
                mx_format_name(r->format), r->loss, acc, qt_now() - t0);
    fflush(log);
}

int qt_eval_anchor_rows(qt_evaluator *e, const qt_anchor_ckpt *a, const char *path,
                        bool activations, qt_eval_row *rows, int n, FILE *log, const char *prog,
                        char *err, size_t errlen) {
    bool head = qt_anchor_head_quantized(a, e->model);
    for (int i = 0; i < n; i++) {
        qt_eval_row *r = &rows[i];
        double t0 = qt_now();
        mx_format f = r->format;
        r->loss = NAN;
        r->has_accuracy = false;
        r->note[0] = '\0';
        char why[256];
        if (f != MX_FP32 && f != a->format && qt_anchor_check_convert(a, f, why, sizeof why)) {
            snprintf(r->note, sizeof r->note, "%s", why);
            progress(log, prog, i, n, r, t0);
            continue;
        }
        if (qt_anchor_load_model(a, e->model, f, path, err, errlen) != 0)
            return -1;
        qt_quant q = {.format = f,
                      .rounding = a->rounding,
                      .ste = AG_STE_IDENTITY,
                      .weights_via = MX_FP32,
                      .weights_ready = true,
                      .activations = activations,
                      .head = head};
        if (row_eval(e, &q, r, err, errlen) != 0)
            return -1;
        progress(log, prog, i, n, r, t0);
    }
    return 0;
}

int qt_eval_direct_rows(qt_evaluator *e, const qt_quant *base, qt_eval_row *rows, int n, FILE *log,
                        const char *prog, char *err, size_t errlen) {
    for (int i = 0; i < n; i++) {
        qt_eval_row *r = &rows[i];
        double t0 = qt_now();
        qt_quant q = *base;
        q.format = r->format;
        q.weights_ready = false;
        r->note[0] = '\0';
        if (row_eval(e, &q, r, err, errlen) != 0)
            return -1;
        progress(log, prog, i, n, r, t0);
    }
    return 0;
}
