/* session.c — setting up a training run, and moving its state to and from checkpoints. */
#define _POSIX_C_SOURCE 200809L
#include "train/run/session.h"

#include "train/run/grpo.h"
#include "train/run/init.h"

#include "train/io/ckpt.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define ERRLEN 2048

static int mkdirs(const char *path, char *err, size_t errlen) {
    char buf[QT_PATH_MAX + 32];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
                snprintf(err, errlen, "cannot create directory '%s': %s", buf, strerror(errno));
                return -1;
            }
            *p = c;
            if (c == '\0')
                return 0;
        }
    }
}

/* A fresh run into an out_dir that holds an earlier run moves that run's files into
 * out_dir/previous-YYYYmmdd-HHMMSS/ first: its checkpoints would otherwise be mixed with (and,
 * being newer by step number, outlive) the new run's, and its metrics.csv would be overwritten. */
static int set_aside_previous_run(const char *out_dir, char *err, size_t errlen) {
    static const char *const names[] = {"ckpt", "metrics.csv", "anchor.h5", "config.ini"};
    char path[QT_PATH_MAX + 32], dest[QT_PATH_MAX + 64], stamp[32];
    bool any = false;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(path, sizeof path, "%s/%s", out_dir, names[i]);
        struct stat st;
        any |= stat(path, &st) == 0;
    }
    if (!any)
        return 0;
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    char dir[QT_PATH_MAX + 48];
    snprintf(dir, sizeof dir, "%s/previous-%s", out_dir, stamp);
    if (mkdir(dir, 0777) != 0) {
        snprintf(err, errlen, "cannot create '%s' to keep the earlier run: %s", dir,
                 strerror(errno));
        return -1;
    }
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(path, sizeof path, "%s/%s", out_dir, names[i]);
        snprintf(dest, sizeof dest, "%s/%s", dir, names[i]);
        if (rename(path, dest) != 0 && errno != ENOENT) {
            snprintf(err, errlen, "cannot move '%s' to '%s': %s", path, dest, strerror(errno));
            return -1;
        }
    }
    fprintf(stderr,
            "qat-train: %s held an earlier run; moved it to %s (use --resume auto to continue a "
            "run instead)\n",
            out_dir, dir);
    return 0;
}

/* out_dir/config.ini, replaced atomically so a reader never sees half of it. */
static int write_resolved_config(const qt_session *s, char *err, size_t errlen) {
    char path[QT_PATH_MAX + 32], tmp[QT_PATH_MAX + 40];
    snprintf(path, sizeof path, "%s/config.ini", s->cfg.run.out_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f || fputs(s->config_text, f) < 0 || fclose(f) != 0 || rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
        remove(tmp);
        return -1;
    }
    return 0;
}

static int load_config(qt_session *s, const qt_train_opts *o, char *err) {
    if (qt_config_defaults(&s->cfg) != 0 || qt_config_load(&s->cfg, o->config_path, err, ERRLEN))
        return -1;
    for (int i = 0; i < o->n_sets; i++)
        if (qt_config_set(&s->cfg, o->sets[i], err, ERRLEN) != 0)
            return -1;
    if (qt_config_validate(&s->cfg, err, ERRLEN) != 0)
        return -1;
    s->config_text = qt_config_to_ini(&s->cfg);
    return s->config_text ? 0 : -1;
}

static double normal_cb(void *rng) { return data_rng_normal(rng); }

static int build_optimizer(qt_session *s, char *err) {
    qt_model *m = s->model;
    s->oparams = calloc(m->n_params, sizeof *s->oparams);
    if (!s->oparams)
        return -1;
    /* Frozen parameters (QLoRA) get no optimizer state and are never updated. */
    for (size_t i = 0; i < m->n_params; i++) {
        qt_param *p = &m->params[i];
        if (p->t.requires_grad)
            s->oparams[s->n_oparams++] =
                (opt_param){p->name, p->t.data, p->t.grad, p->t.numel, p->decay};
    }
    opt_config oc = opt_config_defaults((opt_kind)s->cfg.optim.name);
    oc.beta1 = s->cfg.optim.beta1;
    oc.beta2 = s->cfg.optim.beta2;
    oc.eps = s->cfg.optim.eps;
    oc.weight_decay = s->cfg.optim.weight_decay;
    oc.momentum = s->cfg.optim.momentum;
    s->opt = opt_create(&oc, s->oparams, s->n_oparams, err, ERRLEN);
    return s->opt ? 0 : -1;
}

/* ---- checkpoint state ------------------------------------------------------------------------ */

static void fill_tensor(qt_ckpt_tensor *t, const char *name, float *data, int ndim,
                        const int64_t *shape) {
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = QT_CK_F32;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    t->data = data;
}

static bool all_finite(const float *x, size_t n) {
    float acc = 0;
    for (size_t i = 0; i < n; i++)
        acc += x[i] * 0.0f; /* stays 0 unless some x is Inf or NaN */
    return acc == 0;
}

int qt_session_save(qt_session *s) {
    qt_model *m = s->model;
    char err[ERRLEN];
    if (!all_finite(m->data, m->n_floats)) {
        fprintf(stderr,
                "qat-train: parameters are not finite at step %lld; not writing a "
                "checkpoint (last good: %s)\n",
                (long long)s->step, s->last_ckpt[0] ? s->last_ckpt : "none");
        return QT_EXIT_NUMERIC;
    }
    size_t n_opt = opt_state_count(s->opt);
    qt_ckpt_tensor *params = calloc(m->n_params, sizeof *params);
    qt_ckpt_tensor *optim = calloc(n_opt ? n_opt : 1, sizeof *optim);
    int rc = QT_EXIT_INTERNAL;
    if (!params || !optim)
        goto done;
    for (size_t i = 0; i < m->n_params; i++)
        fill_tensor(&params[i], m->params[i].name, m->params[i].t.data, m->params[i].t.ndim,
                    m->params[i].t.shape);
    for (size_t i = 0; i < n_opt; i++) {
        /* Moments keep their parameter's shape ("NAME/m" belongs to NAME) for h5py users. */
        const opt_state *st = opt_state_at(s->opt, i);
        char pname[QT_NAME_MAX];
        snprintf(pname, sizeof pname, "%s", st->name);
        char *slash = strrchr(pname, '/');
        if (slash)
            *slash = '\0';
        const qt_param *p = qt_model_find(m, pname);
        int64_t flat[1] = {(int64_t)st->numel};
        fill_tensor(&optim[i], st->name, st->data, p ? p->t.ndim : 1, p ? p->t.shape : flat);
    }
    data_sampler_state ds = {0};
    qt_ckpt_rng rngs[DATA_STREAM_COUNT];
    for (int i = 0; i < DATA_STREAM_COUNT; i++) {
        snprintf(rngs[i].name, sizeof rngs[i].name, "%s", data_stream_name((data_stream)i));
        data_rng_get_state(&s->rng[i], rngs[i].s);
    }
    if (s->sampler) { /* pretraining draws from the sampler's own copy of the data stream */
        data_sampler_get_state(s->sampler, &ds);
        memcpy(rngs[DATA_STREAM_DATA].s, ds.rng, sizeof ds.rng);
    }
    qt_ckpt ck = {.kind = QT_CKPT_TRAIN,
                  .step = s->step,
                  .config_text = s->config_text,
                  .model_hash = qt_config_model_hash(&s->cfg),
                  .params = params,
                  .n_params = m->n_params,
                  .optim = optim,
                  .n_optim = n_opt,
                  .optim_step = opt_get_step(s->opt),
                  .optim_lr = s->cfg.optim.lr,
                  .rngs = rngs,
                  .n_rngs = DATA_STREAM_COUNT,
                  .data_epoch = ds.epoch,
                  .data_cursor = ds.cursor};
    qt_ckpt_attr base_attr;
    if (m->slots) { /* which frozen base the adapters belong to (checked on resume) */
        int64_t h = (int64_t)qt_lora_base_hash(m);
        qt_ckpt_attr_ints(&base_attr, "", "lora_base_hash", &h, 1);
        ck.attrs = &base_attr;
        ck.n_attrs = 1;
    }
    char path[sizeof s->last_ckpt];
    qt_ckpt_path(path, sizeof path, s->ckpt_dir, s->step);
    rc = QT_EXIT_CKPT;
    if (qt_ckpt_write(path, &ck, err, sizeof err) != 0) {
        fprintf(stderr, "qat-train: %s\n", err);
        goto done;
    }
    snprintf(s->last_ckpt, sizeof s->last_ckpt, "%s", path);
    if (qt_ckpt_prune(s->ckpt_dir, (int)s->cfg.run.keep, err, sizeof err) != 0)
        fprintf(stderr, "qat-train: warning: %s\n", err);
    rc = QT_EXIT_OK;
done:
    free(params);
    free(optim);
    return rc;
}

/* A checkpoint must come from the same architecture (and optimizer, whose state it holds). */
static int check_compatible(const qt_session *s, const qt_ckpt *ck, const char *path, char *err) {
    if (ck->kind != QT_CKPT_TRAIN) {
        snprintf(err, ERRLEN, "%s: a '%s' checkpoint cannot be resumed (need kind 'train')", path,
                 qt_ckpt_kind_name(ck->kind));
        return -1;
    }
    qt_config saved;
    char perr[ERRLEN], diff[ERRLEN];
    if (qt_config_defaults(&saved) != 0)
        return -1;
    int rc = -1;
    if (qt_config_load_string(&saved, ck->config_text ? ck->config_text : "", path, perr,
                              sizeof perr) != 0) {
        snprintf(err, ERRLEN, "%s: stored config does not parse: %s", path, perr);
    } else if (qt_config_model_diff(&saved, &s->cfg, diff, sizeof diff) > 0) {
        snprintf(err, ERRLEN, "%s: model shape differs from the config (checkpoint vs config): %s",
                 path, diff);
    } else if (saved.run.mode != s->cfg.run.mode) {
        snprintf(err, ERRLEN,
                 "%s: run.mode differs (checkpoint '%s', config '%s'): a run resumes in its own "
                 "mode; start the new one with run.init_from = %s",
                 path, qt_run_mode_name(saved.run.mode), qt_run_mode_name(s->cfg.run.mode), path);
    } else if (saved.optim.name != s->cfg.optim.name) {
        snprintf(err, ERRLEN, "%s: optim.name differs (checkpoint '%s', config '%s')", path,
                 opt_kind_name((opt_kind)saved.optim.name),
                 opt_kind_name((opt_kind)s->cfg.optim.name));
    } else {
        rc = 0;
    }
    qt_config_free(&saved);
    return rc;
}

/* QLoRA: the adapters only make sense on the very base they were trained on. */
static int check_base(const qt_session *s, const qt_ckpt *ck, const char *path, char *err) {
    if (!s->model->slots)
        return 0;
    const qt_ckpt_attr *a = qt_ckpt_find_attr(ck, "", "lora_base_hash");
    if (!a || a->type != QT_CK_ATTR_INT || a->n != 1) {
        snprintf(err, ERRLEN, "%s: holds no lora_base_hash: not a QLoRA checkpoint", path);
        return -1;
    }
    if ((uint64_t)a->ints[0] != qt_lora_base_hash(s->model)) {
        snprintf(err, ERRLEN,
                 "%s: its adapters were trained on another base than lora.init_from = %s in "
                 "lora.base_format = %s (base fingerprints differ)",
                 path, s->cfg.lora.init_from, qt_lora_base_name(s->cfg.lora.base_format));
        return -1;
    }
    return 0;
}

static int restore(qt_session *s, const qt_ckpt *ck, const char *path, char *err) {
    qt_model *m = s->model;
    if (check_compatible(s, ck, path, err) != 0 || check_base(s, ck, path, err) != 0)
        return -1;
    for (size_t i = 0; i < m->n_params; i++) {
        qt_param *p = &m->params[i];
        const qt_ckpt_tensor *t = qt_ckpt_find(ck->params, ck->n_params, p->name);
        bool same = t && t->dtype == QT_CK_F32 && t->ndim == p->t.ndim;
        for (int d = 0; same && d < t->ndim; d++)
            same = t->shape[d] == p->t.shape[d];
        if (!same) {
            snprintf(err, ERRLEN, "%s: /params/%s is %s", path, p->name,
                     t ? "of the wrong shape or type" : "missing");
            return -1;
        }
        memcpy(p->t.data, t->data, p->t.numel * sizeof(float));
    }
    for (size_t i = 0; i < opt_state_count(s->opt); i++) {
        const opt_state *st = opt_state_at(s->opt, i);
        const qt_ckpt_tensor *t = qt_ckpt_find(ck->optim, ck->n_optim, st->name);
        char oerr[512];
        size_t numel = 1;
        for (int d = 0; t && d < t->ndim; d++)
            numel *= (size_t)t->shape[d];
        if (!t || t->dtype != QT_CK_F32 ||
            opt_state_load(s->opt, st->name, t->data, numel, oerr, sizeof oerr)) {
            snprintf(err, ERRLEN, "%s: /optim/%s is missing or has the wrong size", path, st->name);
            return -1;
        }
    }
    opt_set_step(s->opt, ck->optim_step);
    data_sampler_state ds = {.epoch = ck->data_epoch, .cursor = ck->data_cursor};
    bool have_data_rng = false;
    for (size_t i = 0; i < ck->n_rngs; i++) {
        int id = data_stream_from_name(ck->rngs[i].name);
        if (id < 0)
            continue;
        if (id == DATA_STREAM_DATA && s->sampler) {
            memcpy(ds.rng, ck->rngs[i].s, sizeof ds.rng);
            have_data_rng = true;
        } else if (data_rng_set_state(&s->rng[id], ck->rngs[i].s) != 0) {
            snprintf(err, ERRLEN, "%s: /rng/%s is an invalid (all-zero) state", path,
                     ck->rngs[i].name);
            return -1;
        }
    }
    char serr[512];
    if (s->sampler &&
        (!have_data_rng || data_sampler_set_state(s->sampler, &ds, serr, sizeof serr) != 0)) {
        snprintf(err, ERRLEN, "%s: data cursor cannot be restored: %s", path,
                 have_data_rng ? serr : "/rng/data missing");
        return -1;
    }
    s->step = ck->step;
    return 0;
}

static void warn_cb(const char *msg, void *user) {
    (void)user;
    fprintf(stderr, "qat-train: warning: %s\n", msg);
}

/* Returns QT_EXIT_OK (state restored, or nothing to resume under "auto") or QT_EXIT_CKPT. */
static int resume(qt_session *s, const char *spec, char *err) {
    char path[QT_PATH_MAX + 64];
    if (strcmp(spec, "auto") == 0) {
        int found = qt_ckpt_find_latest(s->ckpt_dir, path, sizeof path, warn_cb, NULL, err, ERRLEN);
        if (found < 0)
            return QT_EXIT_CKPT;
        if (found == 0) {
            fprintf(stderr, "qat-train: no checkpoint in %s; starting from step 0\n", s->ckpt_dir);
            return QT_EXIT_OK;
        }
    } else {
        snprintf(path, sizeof path, "%s", spec);
    }
    qt_ckpt ck;
    if (qt_ckpt_read(path, &ck, err, ERRLEN) != 0)
        return QT_EXIT_CKPT;
    int rc = restore(s, &ck, path, err) == 0 ? QT_EXIT_OK : QT_EXIT_CKPT;
    qt_ckpt_free(&ck);
    if (rc == QT_EXIT_OK) {
        snprintf(s->last_ckpt, sizeof s->last_ckpt, "%s", path);
        fprintf(stderr, "qat-train: resumed from %s at step %lld\n", path, (long long)s->step);
    }
    return rc;
}

/* sft / grpo: problems are generated, there is no corpus. */
static int setup_task(qt_session *s, char *err) {
    if (qt_task_open(&s->task, &s->cfg, err, ERRLEN) != 0)
        return -1;
    const data_task_cfg *t = &s->task.cfg;
    fprintf(stderr,
            "qat-train: task %s, %d..%d-digit operands; %zu held-out problems (seed %llu)\n",
            data_task_kind_name(t->kind), t->min_digits, t->max_digits, s->task.n_held_out,
            (unsigned long long)s->cfg.task.eval_seed);
    return 0;
}

static int setup_data(qt_session *s, char *err) {
    if (s->cfg.run.mode != QT_MODE_PRETRAIN)
        return setup_task(s, err);
    const char *corpus = s->cfg.data.corpus;
    if (data_corpus_load(corpus, &s->corpus, err, ERRLEN) != 0)
        return -1;
    char summary[256];
    data_corpus_summary(&s->corpus, summary, sizeof summary);
    fprintf(stderr, "qat-train: corpus %s: %s\n", corpus, summary);
    if (data_split_make(s->corpus.bytes, s->corpus.n_bytes, s->cfg.data.val_fraction, (size_t)s->T,
                        corpus, &s->split, err, ERRLEN) != 0)
        return -1;
    return data_sampler_create(s->split.train, s->split.n_train, (size_t)s->B, (size_t)s->T,
                               &s->rng[DATA_STREAM_DATA], corpus, &s->sampler, err, ERRLEN);
}

int qt_session_open(qt_session *s, const qt_train_opts *o) {
    memset(s, 0, sizeof *s);
    char *err = calloc(1, ERRLEN);
    int rc = QT_EXIT_USAGE;
    if (!err)
        return QT_EXIT_INTERNAL;
    if (load_config(s, o, err) != 0)
        goto fail;
    s->B = s->cfg.data.batch_size;
    s->T = s->cfg.model.seq_len;
    omp_set_num_threads(s->cfg.run.threads > 0 ? s->cfg.run.threads : omp_get_num_procs());
    for (int i = 0; i < DATA_STREAM_COUNT; i++)
        data_rng_seed(&s->rng[i], s->cfg.run.seed, (uint64_t)i);

    if (qt_format_sampler_init(&s->formats, &s->cfg, err, ERRLEN) != 0)
        goto fail;

    rc = QT_EXIT_DATA;
    if (setup_data(s, err) != 0)
        goto fail;

    rc = QT_EXIT_INTERNAL;
    s->model = qt_model_create(&s->cfg, err, ERRLEN);
    if (!s->model)
        goto fail;
    qt_model_init(s->model, normal_cb, &s->rng[DATA_STREAM_INIT]);
    if (s->cfg.lora.enabled && (rc = qt_lora_load_base(s->model, &s->cfg, s->cfg.lora.init_from,
                                                       err, ERRLEN)) != QT_EXIT_OK)
        goto fail;
    rc = QT_EXIT_INTERNAL;
    if (build_optimizer(s, err) != 0)
        goto fail;
    /* Before a resume, which then overwrites these weights with the checkpoint's own. */
    if ((rc = qt_session_init_from(s, err, ERRLEN)) != QT_EXIT_OK)
        goto fail;
    /* GRPO's reference policy is the weights as they stand now, before any resume. */
    rc = QT_EXIT_INTERNAL;
    if (s->cfg.run.mode == QT_MODE_GRPO && qt_grpo_create(s, err, ERRLEN) != 0)
        goto fail;
    rc = QT_EXIT_INTERNAL;
    s->x = calloc((size_t)s->B * (size_t)s->T, sizeof *s->x);
    s->y = calloc((size_t)s->B * (size_t)s->T, sizeof *s->y);
    s->tape = ag_tape_create((size_t)64 << 20, 0, 1 << 14);
    if (!s->x || !s->y || !s->tape) {
        snprintf(err, ERRLEN, "out of memory");
        goto fail;
    }

    snprintf(s->ckpt_dir, sizeof s->ckpt_dir, "%s/ckpt", s->cfg.run.out_dir);
    if ((!o->resume && set_aside_previous_run(s->cfg.run.out_dir, err, ERRLEN) != 0) ||
        mkdirs(s->ckpt_dir, err, ERRLEN) != 0) {
        rc = QT_EXIT_USAGE;
        goto fail;
    }
    if (o->resume && (rc = resume(s, o->resume, err)) != QT_EXIT_OK)
        goto fail;
    /* Only once the run is sure to go ahead: a refused resume must not overwrite the record. */
    if (write_resolved_config(s, err, ERRLEN) != 0) {
        rc = QT_EXIT_USAGE;
        goto fail;
    }
    free(err);
    return QT_EXIT_OK;
fail:
    fprintf(stderr, "qat-train: %s\n", err[0] ? err : "out of memory");
    free(err);
    qt_session_close(s);
    return rc;
}

void qt_session_close(qt_session *s) {
    qt_grpo_free(s);
    ag_tape_free(s->tape);
    free(s->x);
    free(s->y);
    opt_free(s->opt);
    free(s->oparams);
    qt_model_free(s->model);
    data_sampler_free(s->sampler);
    qt_task_close(&s->task);
    data_split_free(&s->split);
    data_corpus_free(&s->corpus);
    free(s->config_text);
    qt_config_free(&s->cfg);
    memset(s, 0, sizeof *s);
}

/* Mean loss over the held-out problems' answer tokens (each batch weighted by its targets). */
static double eval_task(qt_session *s) {
    double sum = 0;
    size_t n = 0, nb = qt_task_val_batches(&s->task, s->B);
    for (size_t b = 0; b < nb; b++) {
        size_t k = qt_task_val_batch(&s->task, b, s->B, s->T, s->x, s->y);
        ag_tape_reset(s->tape);
        ag_tensor *loss = qt_model_loss(s->model, s->tape, s->x, s->y, s->B, s->T);
        if (!loss)
            return NAN;
        sum += (double)*(float *)loss->data * (double)k;
        n += k;
    }
    return sum / (double)n;
}

static double eval_corpus(qt_session *s) {
    /* Past the number of distinct validation batches they would only repeat. */
    size_t nb = (size_t)s->cfg.run.eval_batches;
    size_t avail = data_val_batch_count(s->split.n_val, (size_t)s->B, (size_t)s->T);
    if (nb > avail)
        nb = avail;
    double sum = 0;
    for (size_t b = 0; b < nb; b++) {
        data_val_batch(s->split.val, s->split.n_val, (size_t)s->B, (size_t)s->T, b, s->x, s->y);
        ag_tape_reset(s->tape);
        ag_tensor *loss = qt_model_loss(s->model, s->tape, s->x, s->y, s->B, s->T);
        if (!loss)
            return NAN;
        sum += *(float *)loss->data;
    }
    return sum / (double)nb;
}

double qt_session_eval(qt_session *s, mx_format f) {
    qt_quant q = qt_format_quant(&s->formats, f);
    qt_model_set_quant(s->model, &q);
    ag_tape_set_recording(s->tape, false);
    double loss = s->sampler ? eval_corpus(s) : eval_task(s);
    if (isnan(loss) && ag_tape_error(s->tape)[0])
        fprintf(stderr, "qat-train: evaluation failed: %s\n", ag_tape_error(s->tape));
    ag_tape_reset(s->tape);
    ag_tape_set_recording(s->tape, true);
    return loss;
}

double qt_session_accuracy(qt_session *s, mx_format f) {
    qt_quant q = qt_format_quant(&s->formats, f);
    qt_model_set_quant(s->model, &q);
    double acc;
    char err[512];
    if (qt_task_accuracy(&s->task, s->model, &acc, err, sizeof err) != 0) {
        fprintf(stderr, "qat-train: held-out accuracy failed: %s\n", err);
        return NAN;
    }
    return acc;
}
