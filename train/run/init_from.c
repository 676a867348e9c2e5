/* init_from.c — [run] init_from: a run that starts from another run's weights (fine-tuning, the
 * QAT arms of the PTQ-vs-QAT ablation) instead of a random initialisation. Only the parameters
 * are taken: optimizer state, step, data cursor and RNG streams start fresh from [run] seed. */
#include "train/run/session.h"

#include "train/io/anchor.h"

#include <stdio.h>
#include <string.h>

/* The checkpoint's stored [model] must equal cfg's; the message names every differing key. */
static int same_model(const qt_config *cfg, const qt_ckpt *ck, const char *path, char *err,
                      size_t errlen) {
    qt_config saved;
    char perr[1024], diff[1024];
    if (qt_config_defaults(&saved) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = -1;
    if (qt_config_load_string(&saved, ck->config_text ? ck->config_text : "", path, perr,
                              sizeof perr) != 0)
        snprintf(err, errlen, "run.init_from = %s: stored config does not parse: %s", path, perr);
    else if (qt_config_model_diff(&saved, cfg, diff, sizeof diff) > 0)
        snprintf(err, errlen,
                 "run.init_from = %s: its model differs from this config (checkpoint vs config): "
                 "%s",
                 path, diff);
    else
        rc = 0;
    qt_config_free(&saved);
    return rc;
}

int qt_session_init_from(qt_session *s, char *err, size_t errlen) {
    const char *path = s->cfg.run.init_from;
    if (!path[0])
        return QT_EXIT_OK;
    qt_ckpt ck;
    qt_anchor_ckpt a = {0};
    if (qt_ckpt_read(path, &ck, err, errlen) != 0)
        return QT_EXIT_CKPT;
    int rc = QT_EXIT_CKPT;
    if (same_model(&s->cfg, &ck, path, err, errlen) != 0)
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
