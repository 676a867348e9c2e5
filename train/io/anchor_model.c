/* anchor_model.c — between a model's float parameters and checkpoints: quantize a model into an
 * anchor, set a model's weights from an anchor (Slice-and-Scale, dequantize), and load the float
 * parameters of a training checkpoint. */
#include "train/io/anchor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int qt_anchor_from_model(qt_anchor_ckpt *a, const qt_model *m, bool head, mx_format f,
                         mx_rounding r, const char *config_text, int64_t step, uint64_t model_hash,
                         char *err, size_t errlen) {
    memset(a, 0, sizeof *a);
    if (!qt_anchor_format_ok(f)) {
        snprintf(err, errlen, "%s is not an anchor format (mxint8, mxfp8_e4m3 or mxfp8_e5m2)",
                 mx_format_name(f));
        return -1;
    }
    return qt_quantized_from_model(a, m, head, f, r, config_text, step, model_hash, err, errlen);
}

int qt_quantized_from_model(qt_anchor_ckpt *a, const qt_model *m, bool head, mx_format f,
                            mx_rounding r, const char *config_text, int64_t step,
                            uint64_t model_hash, char *err, size_t errlen) {
    memset(a, 0, sizeof *a);
    if (!mx_format_is_mx(f)) {
        snprintf(err, errlen, "%s is not an MX format", mx_format_name(f));
        return -1;
    }
    a->format = f;
    a->source = MX_FP32;
    a->rounding = r;
    a->step = step;
    a->model_hash = model_hash;
    const char *cfg = config_text ? config_text : "";
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
        if (!qt_model_param_quantized(m, p, head)) {
            if (!(t->data = malloc(p->t.numel * sizeof *t->data)))
                goto oom;
            memcpy(t->data, p->t.data, p->t.numel * sizeof *t->data);
            continue;
        }
        size_t rows = (size_t)p->t.shape[0], cols = (size_t)p->t.shape[1];
        t->quantized = true;
        if (!(t->codes = malloc(rows * cols)) || !(t->scales = malloc(rows * mx_num_blocks(cols))))
            goto oom;
        mx_quantize(p->t.data, t->codes, t->scales, rows, cols, f, r);
    }
    return 0;
oom:
    snprintf(err, errlen, "out of memory quantizing the model to %s", mx_format_name(f));
    qt_anchor_free(a);
    return -1;
}

static const qt_anchor_tensor *find(const qt_anchor_ckpt *a, const char *name) {
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->t[i].name, name) == 0)
            return &a->t[i];
    return NULL;
}

static bool same_shape(const ag_tensor *x, int ndim, const int64_t *shape) {
    if (x->ndim != ndim)
        return false;
    for (int d = 0; d < ndim; d++)
        if (x->shape[d] != shape[d])
            return false;
    return true;
}

/* "[64, 128]" */
static void shape_str(char *out, size_t n, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(out, n, "[");
    for (int d = 0; d < ndim && k < n; d++)
        k += (size_t)snprintf(out + k, n - k, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (k < n)
        snprintf(out + k, n - k, "]");
}

int qt_anchor_load_model(const qt_anchor_ckpt *a, qt_model *m, mx_format f, const char *path,
                         char *err, size_t errlen) {
    char why[256];
    if (f != MX_FP32 && f != a->format && qt_anchor_check_convert(a, f, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s: cannot evaluate at %s: %s", path, mx_format_name(f), why);
        return -1;
    }
    if (a->n != m->n_params) {
        snprintf(err, errlen, "%s: holds %zu tensors, the model (from its stored config) has %zu",
                 path, a->n, m->n_params);
        return -1;
    }
    bool sns = f != MX_FP32 && f != a->format;
    int rc = -1;
    uint8_t *codes = NULL, *scales = NULL;
    for (size_t i = 0; i < m->n_params; i++) {
        qt_param *p = &m->params[i];
        const qt_anchor_tensor *t = find(a, p->name);
        if (!t || !same_shape(&p->t, t->ndim, t->shape)) {
            char want[64], got[64] = "";
            shape_str(want, sizeof want, p->t.ndim, p->t.shape);
            if (t)
                shape_str(got, sizeof got, t->ndim, t->shape);
            snprintf(err, errlen, "%s: /params/%s %s%s, the model needs %s", path, p->name,
                     t ? "has shape " : "is missing", got, want);
            goto done;
        }
        if (!t->quantized) {
            memcpy(p->t.data, t->data, p->t.numel * sizeof(float));
            continue;
        }
        size_t rows = (size_t)t->shape[0], cols = (size_t)t->shape[1];
        if (!sns) {
            mx_dequantize(t->codes, t->scales, p->t.data, rows, cols, a->format);
            continue;
        }
        free(codes);
        free(scales);
        codes = malloc(rows * cols);
        scales = malloc(rows * mx_num_blocks(cols));
        if (!codes || !scales) {
            snprintf(err, errlen, "%s: out of memory for /params/%s", path, p->name);
            goto done;
        }
        mx_slice_and_scale(t->codes, t->scales, a->format, codes, scales, f, rows, cols,
                           a->rounding);
        mx_dequantize(codes, scales, p->t.data, rows, cols, f);
    }
    rc = 0;
done:
    free(codes);
    free(scales);
    return rc;
}

int qt_model_load_params(qt_model *m, const qt_ckpt *ck, const char *path, char *err,
                         size_t errlen) {
    for (size_t i = 0; i < m->n_params; i++) {
        qt_param *p = &m->params[i];
        const qt_ckpt_tensor *t = qt_ckpt_find(ck->params, ck->n_params, p->name);
        if (!t || t->dtype != QT_CK_F32 || !same_shape(&p->t, t->ndim, t->shape)) {
            char want[64];
            shape_str(want, sizeof want, p->t.ndim, p->t.shape);
            snprintf(err, errlen, "%s: /params/%s is %s (the model needs float32 %s)", path,
                     p->name,
                     !t                      ? "missing"
                     : t->dtype != QT_CK_F32 ? "not float32"
                                             : "of another shape",
                     want);
            return -1;
        }
        memcpy(p->t.data, t->data, p->t.numel * sizeof(float));
    }
    return 0;
}

int qt_anchor_from_train(qt_anchor_ckpt *a, const qt_ckpt *ck, const char *path, mx_format f,
                         char *err, size_t errlen) {
    char why[1024];
    qt_config cfg;
    qt_model *m = NULL;
    int rc = -1;
    memset(a, 0, sizeof *a);
    if (ck->kind == QT_CKPT_ANCHOR) {
        snprintf(err, errlen, "%s: is an anchor, not a training checkpoint (kind 'train')", path);
        return -1;
    }
    if (qt_config_defaults(&cfg) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (qt_config_load_string(&cfg, ck->config_text ? ck->config_text : "", path, why,
                              sizeof why) != 0 ||
        qt_config_validate(&cfg, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s: the stored config is not usable: %s", path, why);
        goto done;
    }
    if (cfg.lora.enabled) {
        snprintf(err, errlen,
                 "%s: a QLoRA checkpoint holds adapters on a frozen base; fold them in first "
                 "(qat-merge --adapters %s --out merged.h5)",
                 path, path);
        goto done;
    }
    if (qt_config_model_hash(&cfg) != ck->model_hash) {
        snprintf(err, errlen,
                 "%s: model_hash %016llx does not match the stored [model] config "
                 "(%016llx): file is inconsistent",
                 path, (unsigned long long)ck->model_hash,
                 (unsigned long long)qt_config_model_hash(&cfg));
        goto done;
    }
    if (!(m = qt_model_create(&cfg, why, sizeof why))) {
        snprintf(err, errlen, "%s: %s", path, why);
        goto done;
    }
    if (qt_model_load_params(m, ck, path, err, errlen) != 0)
        goto done;
    if (qt_anchor_from_model(a, m, cfg.quant.quantize_head, f, (mx_rounding)cfg.quant.rounding,
                             ck->config_text, ck->step, ck->model_hash, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s: %s", path, why);
        goto done;
    }
    rc = 0;
done:
    qt_model_free(m);
    qt_config_free(&cfg);
    return rc;
}
