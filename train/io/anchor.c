/* anchor.c — anchor checkpoints in memory: release, and Slice-and-Scale to a lower format. */
#include "train/io/anchor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool qt_anchor_format_ok(mx_format f) {
    return f == MX_INT8 || f == MX_FP8_E4M3 || f == MX_FP8_E5M2;
}

void qt_anchor_free(qt_anchor_ckpt *a) {
    if (!a)
        return;
    for (size_t i = 0; a->t && i < a->n; i++) {
        free(a->t[i].codes);
        free(a->t[i].scales);
        free(a->t[i].data);
    }
    free(a->t);
    free(a->config_text);
    memset(a, 0, sizeof *a);
}

size_t qt_anchor_quantized_count(const qt_anchor_ckpt *a, size_t *packed_bytes) {
    size_t n = 0, bytes = 0;
    for (size_t i = 0; i < a->n; i++) {
        const qt_anchor_tensor *t = &a->t[i];
        if (!t->quantized)
            continue;
        size_t rows = (size_t)t->shape[0], cols = (size_t)t->shape[1];
        bytes += mx_packed_size(a->format, rows * cols) + rows * mx_num_blocks(cols);
        n++;
    }
    if (packed_bytes)
        *packed_bytes = bytes;
    return n;
}

bool qt_anchor_head_quantized(const qt_anchor_ckpt *a, const qt_model *m) {
    const char *head = m->lm_head ? "lm_head" : "wte";
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->t[i].name, head) == 0)
            return a->t[i].quantized;
    return false;
}

int qt_anchor_check_convert(const qt_anchor_ckpt *a, mx_format dst, char *why, size_t whylen) {
    const char *src = mx_format_name(a->format);
    if (!mx_format_is_mx(dst) || mx_format_bits(dst) > mx_format_bits(a->format)) {
        snprintf(why, whylen,
                 "%s (%d bits) is above %s (%d bits): Slice-and-Scale only goes to formats with at "
                 "most the source's bits",
                 mx_format_name(dst), mx_format_bits(dst), src, mx_format_bits(a->format));
        return -1;
    }
    if (dst == a->format)
        return 0; /* the identity */
    if (a->ptq_method[0]) {
        snprintf(why, whylen,
                 "the file holds %s weights quantized by post-training quantization (%s) for %s "
                 "only; run qat-ptq again for %s",
                 src, a->ptq_method, src, mx_format_name(dst));
        return -1;
    }
    if (a->source != MX_FP32) {
        snprintf(why, whylen,
                 "the file was already converted (%s -> %s) and reaches only %s; Slice-and-Scale "
                 "to %s from the original %s anchor",
                 mx_format_name(a->source), src, src, mx_format_name(dst),
                 mx_format_name(a->source));
        return -1;
    }
    if (!mx_sns_supported(a->format, dst)) {
        snprintf(why, whylen,
                 "Slice-and-Scale from %s to %s is not defined (the source must be mxint8, "
                 "mxfp8_e4m3 or mxfp8_e5m2)",
                 src, mx_format_name(dst));
        return -1;
    }
    return 0;
}

static int copy_tensor(qt_anchor_tensor *d, const qt_anchor_tensor *s, mx_format from, mx_format to,
                       mx_rounding r) {
    *d = *s;
    d->codes = NULL;
    d->scales = NULL;
    d->data = NULL;
    size_t numel = 1;
    for (int k = 0; k < s->ndim; k++)
        numel *= (size_t)s->shape[k];
    if (!s->quantized) {
        if (!(d->data = malloc(numel * sizeof *d->data)))
            return -1;
        memcpy(d->data, s->data, numel * sizeof *d->data);
        return 0;
    }
    size_t rows = (size_t)s->shape[0], cols = (size_t)s->shape[1];
    size_t ns = rows * mx_num_blocks(cols);
    if (!(d->codes = malloc(numel)) || !(d->scales = malloc(ns)))
        return -1;
    if (from == to) {
        memcpy(d->codes, s->codes, numel);
        memcpy(d->scales, s->scales, ns);
    } else {
        mx_slice_and_scale(s->codes, s->scales, from, d->codes, d->scales, to, rows, cols, r);
    }
    return 0;
}

int qt_anchor_convert(const qt_anchor_ckpt *src, mx_format dst, qt_anchor_ckpt *out, char *err,
                      size_t errlen) {
    char why[256];
    memset(out, 0, sizeof *out);
    if (qt_anchor_check_convert(src, dst, why, sizeof why) != 0) {
        snprintf(err, errlen, "cannot convert to %s: %s", mx_format_name(dst), why);
        return -1;
    }
    out->format = dst;
    out->source = dst == src->format ? src->source : src->format;
    out->rounding = src->rounding;
    memcpy(out->ptq_method, src->ptq_method, sizeof out->ptq_method);
    out->ptq_alpha = src->ptq_alpha;
    out->ptq_calib_batches = src->ptq_calib_batches;
    out->step = src->step;
    out->model_hash = src->model_hash;
    const char *cfg = src->config_text ? src->config_text : "";
    if (!(out->config_text = malloc(strlen(cfg) + 1)) ||
        !(out->t = calloc(src->n ? src->n : 1, sizeof *out->t)))
        goto oom;
    strcpy(out->config_text, cfg);
    for (size_t i = 0; i < src->n; i++) {
        out->n = i + 1; /* so qt_anchor_free releases a partly filled entry */
        if (copy_tensor(&out->t[i], &src->t[i], src->format, dst, src->rounding) != 0)
            goto oom;
    }
    out->n = src->n;
    return 0;
oom:
    snprintf(err, errlen, "out of memory converting to %s", mx_format_name(dst));
    qt_anchor_free(out);
    return -1;
}
