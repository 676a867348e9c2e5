/* init_from.c — runs that start from another checkpoint's weights instead of a random
 * initialisation: [run] init_from (fine-tuning, the QAT arms of the PTQ-vs-QAT ablation) and
 * [lora] init_from (the frozen QLoRA base). Only weights are taken: optimizer state, step, data
 * cursor and RNG streams start fresh from [run] seed. */
#include "train/run/init.h"

#include "train/io/anchor.h"
#include "train/run/session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int qt_weights_path(const char *path, char *out, size_t outlen, char *err, size_t errlen) {
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(out, outlen, "%s", path); /* a file, or missing: qt_ckpt_read says which */
        return 0;
    }
    char dir[QT_PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/ckpt", path);
    int found = qt_ckpt_find_latest(dir, out, outlen, NULL, NULL, err, errlen);
    if (found == 0)
        snprintf(err, errlen,
                 "%s is a directory without checkpoints in %s/ (expected a run's "
                 "out_dir, or a checkpoint file)",
                 path, dir);
    return found == 1 ? 0 : -1;
}

/* The checkpoint's stored [model] must equal cfg's; the message names every differing key. */
static int same_model(const qt_config *cfg, const qt_ckpt *ck, const char *path, const char *key,
                      char *err, size_t errlen) {
    qt_config saved;
    char perr[1024], diff[1024];
    if (qt_config_defaults(&saved) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = -1;
    if (qt_config_load_string(&saved, ck->config_text ? ck->config_text : "", path, perr,
                              sizeof perr) != 0)
        snprintf(err, errlen, "%s = %s: stored config does not parse: %s", key, path, perr);
    else if (qt_config_model_diff(&saved, cfg, diff, sizeof diff) > 0)
        snprintf(err, errlen,
                 "%s = %s: its model differs from this config (checkpoint vs config): %s", key,
                 path, diff);
    else
        rc = 0;
    qt_config_free(&saved);
    return rc;
}

int qt_session_init_from(qt_session *s, char *err, size_t errlen) {
    if (!s->cfg.run.init_from[0])
        return QT_EXIT_OK;
    char path[QT_PATH_MAX + 64], why[1024];
    if (qt_weights_path(s->cfg.run.init_from, path, sizeof path, why, sizeof why) != 0) {
        snprintf(err, errlen, "run.init_from = %s: %s", s->cfg.run.init_from, why);
        return QT_EXIT_CKPT;
    }
    qt_ckpt ck;
    qt_anchor_ckpt a = {0};
    if (qt_ckpt_read(path, &ck, why, sizeof why) != 0) {
        snprintf(err, errlen, "run.init_from = %s: %s", s->cfg.run.init_from, why);
        return QT_EXIT_CKPT;
    }
    int rc = QT_EXIT_CKPT;
    if (same_model(&s->cfg, &ck, path, "run.init_from", err, errlen) != 0)
        goto done;
    if (ck.kind == QT_CKPT_TRAIN) {
        if (qt_model_load_params(s->model, &ck, path, err, errlen) != 0)
            goto done;
    } else if (qt_anchor_from_ckpt(&a, &ck, path, err, errlen) != 0 ||
               qt_anchor_load_model(&a, s->model, MX_FP32, path, err, errlen) != 0) {
        goto done;
    }
    fprintf(stderr, "qat-train: weights from %s (%s checkpoint, step %lld)%s\n", path,
            qt_ckpt_kind_name(ck.kind), (long long)ck.step,
            ck.kind == QT_CKPT_TRAIN ? "" : ", dequantized");
    rc = QT_EXIT_OK;
done:
    qt_anchor_free(&a);
    qt_ckpt_free(&ck);
    return rc;
}

/* ---- the QLoRA base ---- */

/* The float values of tensor `name` of a training checkpoint, or of an anchor/PTQ file
 * (dequantized into *tmp, which the caller frees). NULL when absent or of another shape. */
static const float *source(const qt_ckpt *ck, const qt_anchor_ckpt *a, const char *name,
                           const int64_t *shape, int ndim, float **tmp) {
    if (!a) {
        const qt_ckpt_tensor *t = qt_ckpt_find(ck->params, ck->n_params, name);
        bool ok = t && t->dtype == QT_CK_F32 && t->ndim == ndim;
        for (int d = 0; ok && d < ndim; d++)
            ok = t->shape[d] == shape[d];
        return ok ? t->data : NULL;
    }
    for (size_t i = 0; i < a->n; i++) {
        const qt_anchor_tensor *t = &a->t[i];
        if (strcmp(t->name, name) != 0 || t->ndim != ndim)
            continue;
        size_t n = 1;
        for (int d = 0; d < ndim; d++) {
            if (t->shape[d] != shape[d])
                return NULL;
            n *= (size_t)shape[d];
        }
        if (!t->quantized)
            return t->data;
        free(*tmp);
        if (!(*tmp = malloc(n * sizeof **tmp)))
            return NULL;
        mx_dequantize(t->codes, t->scales, *tmp, (size_t)shape[0], (size_t)shape[1], a->format);
        return *tmp;
    }
    return NULL;
}

/* Pack every base weight of m and copy its frozen float parameters (not the adapters). */
static int fill_base(qt_model *m, const qt_ckpt *ck, const qt_anchor_ckpt *a, const char *path,
                     char *err, size_t errlen) {
    float *tmp = NULL;
    int rc = -1;
    for (size_t i = 0; i < m->n_slots; i++) {
        qt_lora_slot *s = &m->slots[i];
        int64_t shape[2] = {s->rows, s->cols};
        const float *w = source(ck, a, s->name, shape, 2, &tmp);
        if (!w) {
            snprintf(err, errlen, "lora.init_from = %s: /params/%s is missing or not [%lld, %lld]",
                     path, s->name, (long long)s->rows, (long long)s->cols);
            goto done;
        }
        if (qt_lora_set_base(m, s, w, err, errlen) != 0)
            goto done;
    }
    for (size_t i = 0; i < m->n_params; i++) {
        qt_param *p = &m->params[i];
        if (strstr(p->name, ".lora_a") || strstr(p->name, ".lora_b"))
            continue;
        const float *w = source(ck, a, p->name, p->t.shape, p->t.ndim, &tmp);
        if (!w) {
            snprintf(err, errlen, "lora.init_from = %s: /params/%s is missing or of another shape",
                     path, p->name);
            goto done;
        }
        memcpy(p->t.data, w, p->t.numel * sizeof(float));
    }
    rc = 0;
done:
    free(tmp);
    return rc;
}

int qt_lora_load_base(qt_model *m, const qt_config *cfg, const char *spec, char *err,
                      size_t errlen) {
    char path[QT_PATH_MAX + 64], why[1024];
    if (qt_weights_path(spec, path, sizeof path, why, sizeof why) != 0) {
        snprintf(err, errlen, "lora.init_from = %s: %s", spec, why);
        return QT_EXIT_CKPT;
    }
    qt_ckpt ck;
    qt_anchor_ckpt a = {0};
    if (qt_ckpt_read(path, &ck, why, sizeof why) != 0) {
        snprintf(err, errlen, "lora.init_from = %s: %s", spec, why);
        return QT_EXIT_CKPT;
    }
    int rc = QT_EXIT_CKPT;
    bool anchor = ck.kind != QT_CKPT_TRAIN;
    if (same_model(cfg, &ck, path, "lora.init_from", err, errlen) != 0 ||
        (anchor && qt_anchor_from_ckpt(&a, &ck, path, err, errlen) != 0) ||
        fill_base(m, &ck, anchor ? &a : NULL, path, err, errlen) != 0)
        goto done;
    rc = QT_EXIT_OK;
done:
    qt_anchor_free(&a);
    qt_ckpt_free(&ck);
    return rc;
}
