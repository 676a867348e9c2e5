/* loop.c — the training loop: one step = batch, forward, backward, clip, update; then logging,
 * evaluation and checkpoints on their schedules. Nothing here allocates per step: activations
 * live in the tape's arena, which is reset at the start of every step. */
#include "train/io/metrics.h"
#include "train/run/grpo.h"
#include "train/run/progress.h"
#include "train/run/session.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int qt_session_step(qt_session *s, double lr, int64_t debug_nan_at, qt_step_result *r) {
    double t0 = qt_now();
    r->format = qt_format_draw(&s->formats, &s->rng[DATA_STREAM_FORMAT], s->step);
    qt_quant q = qt_format_quant(&s->formats, r->format);
    qt_model_set_quant(s->model, &q);
    if (s->sampler) {
        data_sampler_next(s->sampler, s->x, s->y);
    } else {
        char err[512];
        if (data_task_sft_batch(&s->task.cfg, &s->rng[DATA_STREAM_DATA], (size_t)s->B, (size_t)s->T,
                                s->task.held_out, s->task.n_held_out, s->x, s->y, err,
                                sizeof err) != 0) {
            fprintf(stderr, "\nqat-train: step %lld: %s\n", (long long)s->step + 1, err);
            return QT_EXIT_DATA;
        }
    }
    /* One draw per step whatever the config, so the stream's position depends on the step count
     * alone (resume stays bit-identical). */
    s->model->dropout_seed = data_rng_next(&s->rng[DATA_STREAM_DROPOUT]);
    ag_tape_reset(s->tape);
    ag_tensor *loss = qt_model_loss(s->model, s->tape, s->x, s->y, s->B, s->T);
    if (!loss) {
        fprintf(stderr, "\nqat-train: step %lld: %s\n", (long long)s->step + 1,
                ag_tape_error(s->tape));
        return QT_EXIT_INTERNAL;
    }
    r->loss = *(float *)loss->data;
    if (s->step + 1 == debug_nan_at)
        r->loss = NAN;
    if (!isfinite(r->loss)) {
        fprintf(stderr,
                "\nqat-train: loss is %g at step %lld; stopping (last good checkpoint: %s)\n",
                r->loss, (long long)s->step + 1, s->last_ckpt[0] ? s->last_ckpt : "none");
        return QT_EXIT_NUMERIC;
    }
    qt_model_zero_grad(s->model);
    if (ag_backward(s->tape, loss, NULL) != 0) {
        fprintf(stderr, "\nqat-train: backward failed: %s\n", ag_tape_error(s->tape));
        return QT_EXIT_INTERNAL;
    }
    r->grad_norm = opt_clip_grad_norm(s->oparams, s->n_oparams, s->cfg.optim.grad_clip);
    if (!isfinite(r->grad_norm)) {
        fprintf(stderr,
                "\nqat-train: gradient norm is %g at step %lld; stopping (last good checkpoint: "
                "%s)\n",
                r->grad_norm, (long long)s->step + 1, s->last_ckpt[0] ? s->last_ckpt : "none");
        return QT_EXIT_NUMERIC;
    }
    opt_step(s->opt, lr);
    s->step++;
    r->seconds = qt_now() - t0;
    return QT_EXIT_OK;
}

static bool every(int64_t step, int64_t n) { return n > 0 && step % n == 0; }

static void print_banner(const qt_session *s) {
    const qt_model *m = s->model;
    const qt_config *c = &s->cfg;
    fprintf(stderr,
            "qat-train: GPT %d layers, %d heads, d_model %d, d_ff %d, seq %d: %zu parameters "
            "(attention projections %zu)\n",
            m->L, m->NH, m->C, m->F, m->T, qt_model_param_count(m), qt_model_attn_param_count(m));
    if (m->slots) {
        size_t nb = qt_lora_base_count(m), bytes = qt_lora_base_bytes(m);
        fprintf(stderr,
                "qat-train: QLoRA: frozen base of %zu weights in %s, %.2f MB packed (%.3f "
                "bits/weight) from %s; %zu trainable parameters (adapters rank %d on %s, scale "
                "%g)\n",
                nb, qt_lora_base_name(c->lora.base_format), (double)bytes / 1e6,
                nb ? 8.0 * (double)bytes / (double)nb : 0.0, c->lora.init_from,
                qt_lora_trainable_count(m), m->lora_rank, c->lora.targets, m->lora_scale);
    }
    char what[160];
    if (c->run.mode == QT_MODE_GRPO)
        snprintf(what, sizeof what,
                 "GRPO steps of %d prompts x %d completions (%d update%s each, loss %s)",
                 c->grpo.prompts_per_step, c->grpo.group_size, c->grpo.iterations,
                 c->grpo.iterations == 1 ? "" : "s", qt_grpo_loss_name(c->grpo.loss_type));
    else if (c->run.mode == QT_MODE_SFT)
        snprintf(what, sizeof what, "SFT steps of %d problems (%d positions)", s->B, s->T);
    else
        snprintf(what, sizeof what, "steps of %d x %d tokens", s->B, s->T);
    fprintf(stderr, "qat-train: %lld %s, %s, lr %g, out_dir %s\n", (long long)c->run.steps, what,
            opt_kind_name((opt_kind)c->optim.name), c->optim.lr, c->run.out_dir);
}

/* The columns each mode appends to metrics.csv (docs/GRPO.md); accuracy is always the last. */
static const char *extra_columns(qt_run_mode m) {
    return m == QT_MODE_SFT    ? "accuracy"
           : m == QT_MODE_GRPO ? "reward_mean,reward_std,kl,clip_frac,completion_len,truncated,"
                                 "accuracy"
                               : "";
}

typedef struct step_out {
    qt_step_result r;
    double extra[8]; /* the mode's extra columns */
    int n_extra;
} step_out;

static int do_step(qt_session *s, const qt_train_opts *o, double lr, step_out *out) {
    out->extra[0] = NAN;
    out->n_extra = s->cfg.run.mode == QT_MODE_SFT;
    if (s->cfg.run.mode != QT_MODE_GRPO)
        return qt_session_step(s, lr, o->debug_nan_at, &out->r);
    qt_grpo_result g;
    int rc = qt_grpo_step(s, lr, &g);
    out->r = (qt_step_result){g.loss, g.grad_norm, g.seconds, g.format};
    double e[] = {g.reward_mean,    g.reward_std, g.kl, g.clip_frac,
                  g.completion_len, g.truncated,  NAN};
    memcpy(out->extra, e, sizeof e);
    out->n_extra = (int)(sizeof e / sizeof *e);
    return rc;
}

/* Validation loss and, for task modes, held-out accuracy (into *acc, else NAN), printed. */
static double evaluate(qt_session *s, qt_progress *pr, double *acc) {
    mx_format f = qt_format_eval(&s->formats);
    double val = qt_session_eval(s, f);
    *acc = NAN;
    if (s->cfg.run.mode == QT_MODE_PRETRAIN) {
        qt_progress_println(pr, "step %lld: val_loss %.4f", (long long)s->step, val);
        return val;
    }
    *acc = qt_session_accuracy(s, f);
    qt_progress_println(pr, "step %lld: val_loss %.4f, held-out accuracy %.1f%% (%s)",
                        (long long)s->step, val, 100 * *acc, mx_format_name(f));
    return val;
}

static int run(qt_session *s, const qt_train_opts *o, FILE *metrics) {
    const qt_config *c = &s->cfg;
    qt_progress pr;
    qt_progress_init(&pr, stderr, s->step, c->run.steps, c->run.log_every);
    int64_t tokens_per_step =
        c->run.mode == QT_MODE_GRPO ? qt_grpo_tokens_per_step(s) : (int64_t)s->B * s->T;
    double last_val = NAN, last_acc = NAN;
    while (s->step < c->run.steps) {
        if (o->stop_after > 0 && s->step >= o->stop_after)
            break;
        double lr = opt_schedule_lr((opt_schedule)c->optim.schedule, c->optim.lr, c->optim.min_lr,
                                    c->optim.warmup_steps, c->run.steps, s->step);
        step_out so;
        int rc = do_step(s, o, lr, &so);
        if (rc != QT_EXIT_OK)
            return rc;
        const qt_step_result *r = &so.r;
        double val = NAN;
        if (every(s->step, c->run.eval_every) || s->step == c->run.steps) {
            val = last_val = evaluate(s, &pr, &last_acc);
            if (so.n_extra > 0)
                so.extra[so.n_extra - 1] = last_acc;
        }
        double tps = (double)tokens_per_step / r->seconds;
        const char *fmt = mx_format_name(r->format);
        qt_metrics_row row = {
            s->step,      s->step * tokens_per_step, lr,  fmt,      r->loss,   val,
            r->grad_norm, 1000.0 * r->seconds,       tps, so.extra, so.n_extra};
        qt_metrics_write(metrics, &row);
        qt_progress_update(&pr, s->step, r->loss, lr, tps, fmt);
        bool interrupted = o->stop && *o->stop;
        if (every(s->step, c->run.ckpt_every) || interrupted || s->step == c->run.steps) {
            if ((rc = qt_session_save(s)) != QT_EXIT_OK)
                return rc;
        }
        if (interrupted) {
            qt_progress_println(&pr, "qat-train: interrupted; checkpoint written to %s",
                                s->last_ckpt);
            return QT_EXIT_INTERRUPTED;
        }
    }
    qt_progress_done(&pr);
    if (s->step < c->run.steps) { /* --stop-after */
        int rc = qt_session_save(s);
        if (rc == QT_EXIT_OK)
            fprintf(stderr, "qat-train: stopped after step %lld; checkpoint %s\n",
                    (long long)s->step, s->last_ckpt);
        return rc;
    }
    if (isnan(last_val)) {
        last_val = qt_session_eval(s, qt_format_eval(&s->formats));
        if (c->run.mode != QT_MODE_PRETRAIN)
            last_acc = qt_session_accuracy(s, qt_format_eval(&s->formats));
    }
    char acc[64] = "";
    if (!isnan(last_acc))
        snprintf(acc, sizeof acc, ", held-out accuracy %.1f%%", 100 * last_acc);
    fprintf(stderr,
            "qat-train: done: %lld steps, final val_loss %.4f%s; checkpoint %s; peak RSS %.0f "
            "MiB\n",
            (long long)s->step, last_val, acc, s->last_ckpt, qt_peak_rss_mb());
    if (c->quant.mode != QT_QUANT_NONE && s->model->slots) {
        fprintf(stderr, "qat-train: no anchor.h5 for a QLoRA run: qat-merge folds the adapters "
                        "into the base and writes one (--format mxint8)\n");
        return QT_EXIT_OK;
    }
    if (c->quant.mode != QT_QUANT_NONE)
        return qt_session_final_anchor(s);
    return QT_EXIT_OK;
}

int qt_train(const qt_train_opts *o) {
    qt_session s;
    int rc = qt_session_open(&s, o);
    if (rc != QT_EXIT_OK)
        return rc;
    print_banner(&s);
    char path[QT_PATH_MAX + 32], err[1024];
    snprintf(path, sizeof path, "%s/metrics.csv", s.cfg.run.out_dir);
    FILE *metrics = qt_metrics_open(path, s.step > 0 ? s.step : -1, extra_columns(s.cfg.run.mode),
                                    err, sizeof err);
    if (!metrics) {
        fprintf(stderr, "qat-train: %s\n", err);
        qt_session_close(&s);
        return QT_EXIT_USAGE;
    }
    rc = run(&s, o, metrics);
    fclose(metrics);
    qt_session_close(&s);
    return rc;
}
