/* anchor_file.c — anchor checkpoints to and from qat checkpoint files: codes bit-packed with
 * mx_pack into /params/NAME/elements, E8M0 scales at /params/NAME/scales, the format, shape and
 * rounding as attributes (layout in anchor.h). */
#include "train/io/anchor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *rounding_name(mx_rounding r) {
    return r == MX_ROUND_NEAREST ? "nearest" : "even";
}

static int rounding_parse(const char *s, mx_rounding *r) {
    if (strcmp(s, "even") == 0)
        *r = MX_ROUND_EVEN;
    else if (strcmp(s, "nearest") == 0)
        *r = MX_ROUND_NEAREST;
    else
        return -1;
    return 0;
}

/* ---- writing ---- */

int qt_anchor_write(const char *path, const qt_anchor_ckpt *a, char *err, size_t errlen) {
    size_t nq = qt_anchor_quantized_count(a, NULL);
    size_t n_params = a->n + nq, n_attrs = 6 + 3 * nq;
    qt_ckpt_tensor *params = calloc(n_params ? n_params : 1, sizeof *params);
    qt_ckpt_attr *attrs = calloc(n_attrs, sizeof *attrs);
    int rc = -1;
    size_t np = 0, na = 0;
    if (!params || !attrs)
        goto oom;
    if (!mx_format_is_mx(a->format)) {
        snprintf(err, errlen, "%s: an anchor needs an MX format, not %s", path,
                 mx_format_name(a->format));
        goto done;
    }
    qt_ckpt_attr_str(&attrs[na++], "", "format", mx_format_name(a->format));
    qt_ckpt_attr_str(&attrs[na++], "", "rounding", rounding_name(a->rounding));
    if (a->source != MX_FP32)
        qt_ckpt_attr_str(&attrs[na++], "", "source_format", mx_format_name(a->source));
    if (a->ptq_method[0]) {
        qt_ckpt_attr_str(&attrs[na++], "", "ptq_method", a->ptq_method);
        char alpha[32]; /* attributes are strings or integers: the exact double as text */
        snprintf(alpha, sizeof alpha, "%.17g", a->ptq_alpha);
        qt_ckpt_attr_str(&attrs[na++], "", "ptq_alpha", alpha);
        qt_ckpt_attr_ints(&attrs[na++], "", "ptq_calib_batches", &a->ptq_calib_batches, 1);
    }
    for (size_t i = 0; i < a->n; i++) {
        const qt_anchor_tensor *t = &a->t[i];
        if (!t->quantized) {
            qt_ckpt_tensor *p = &params[np++];
            snprintf(p->name, sizeof p->name, "%s", t->name);
            p->dtype = QT_CK_F32;
            p->ndim = t->ndim;
            memcpy(p->shape, t->shape, sizeof p->shape);
            p->data = t->data;
            continue;
        }
        size_t rows = (size_t)t->shape[0], cols = (size_t)t->shape[1];
        size_t packed = mx_packed_size(a->format, rows * cols);
        qt_ckpt_tensor *el = &params[np++], *sc = &params[np++];
        if (strlen(t->name) + sizeof "/elements" > sizeof el->name) {
            snprintf(err, errlen, "%s: tensor name '%s' is too long", path, t->name);
            goto done;
        }
        snprintf(el->name, sizeof el->name, "%s/elements", t->name);
        el->dtype = QT_CK_U8;
        el->ndim = 1;
        el->shape[0] = (int64_t)packed;
        if (!(el->data = malloc(packed)))
            goto oom;
        mx_pack(t->codes, rows * cols, a->format, el->data);
        snprintf(sc->name, sizeof sc->name, "%s/scales", t->name);
        sc->dtype = QT_CK_U8;
        sc->ndim = 2;
        sc->shape[0] = (int64_t)rows;
        sc->shape[1] = (int64_t)mx_num_blocks(cols);
        sc->data = t->scales; /* only read by the writer */
        qt_ckpt_attr_str(&attrs[na++], t->name, "format", mx_format_name(a->format));
        qt_ckpt_attr_ints(&attrs[na++], t->name, "shape", t->shape, 2);
        qt_ckpt_attr_str(&attrs[na++], t->name, "rounding", rounding_name(a->rounding));
    }
    qt_ckpt ck = {.kind = a->ptq_method[0] ? QT_CKPT_PTQ : QT_CKPT_ANCHOR,
                  .step = a->step,
                  .config_text = a->config_text,
                  .model_hash = a->model_hash,
                  .params = params,
                  .n_params = np,
                  .optim_step = a->step,
                  .attrs = attrs,
                  .n_attrs = na};
    rc = qt_ckpt_write(path, &ck, err, errlen);
    goto done;
oom:
    snprintf(err, errlen, "%s: out of memory packing the anchor", path);
done:
    for (size_t i = 0; params && i < np; i++)
        if (strstr(params[i].name, "/elements") && params[i].dtype == QT_CK_U8)
            free(params[i].data);
    free(params);
    free(attrs);
    return rc;
}

/* ---- reading ---- */

/* The string attribute name of obj, parsed as an MX format (fp32 refused). */
static int attr_format(const qt_ckpt *ck, const char *obj, const char *name, const char *path,
                       mx_format *f, char *err, size_t errlen) {
    const qt_ckpt_attr *at = qt_ckpt_find_attr(ck, obj, name);
    if (!at || at->type != QT_CK_ATTR_STR) {
        snprintf(err, errlen, "%s: %s attribute '%s' of /%s%s", path, at ? "non-string" : "missing",
                 name, obj[0] ? "params/" : "", obj);
        return -1;
    }
    if (mx_format_parse(at->str, f) != 0 || !mx_format_is_mx(*f)) {
        snprintf(err, errlen, "%s: attribute '%s' of /%s%s is '%s', not an MX format", path, name,
                 obj[0] ? "params/" : "", obj, at->str);
        return -1;
    }
    return 0;
}

static int attr_rounding(const qt_ckpt *ck, const char *obj, const char *path, mx_rounding *r,
                         char *err, size_t errlen) {
    const qt_ckpt_attr *at = qt_ckpt_find_attr(ck, obj, "rounding");
    if (!at || at->type != QT_CK_ATTR_STR || rounding_parse(at->str, r) != 0) {
        snprintf(err, errlen, "%s: attribute 'rounding' of /%s%s is %s (expected even or nearest)",
                 path, obj[0] ? "params/" : "", obj, at ? "invalid" : "missing");
        return -1;
    }
    return 0;
}

/* One quantized tensor from /params/NAME/{elements,scales} and the attributes of /params/NAME. */
static int read_quantized(const qt_anchor_ckpt *a, const qt_ckpt *ck, const char *name,
                          qt_anchor_tensor *t, const char *path, char *err, size_t errlen) {
    char el_name[QT_CKPT_NAME_MAX + 16], sc_name[QT_CKPT_NAME_MAX + 16];
    snprintf(el_name, sizeof el_name, "%s/elements", name);
    snprintf(sc_name, sizeof sc_name, "%s/scales", name);
    const qt_ckpt_tensor *el = qt_ckpt_find(ck->params, ck->n_params, el_name);
    const qt_ckpt_tensor *sc = qt_ckpt_find(ck->params, ck->n_params, sc_name);
    if (!el || !sc) {
        snprintf(err, errlen,
                 "%s: /params/%s is missing (a quantized tensor needs elements and "
                 "scales)",
                 path, el ? sc_name : el_name);
        return -1;
    }
    mx_format f;
    mx_rounding r;
    const qt_ckpt_attr *shape = qt_ckpt_find_attr(ck, name, "shape");
    if (attr_format(ck, name, "format", path, &f, err, errlen) != 0 ||
        attr_rounding(ck, name, path, &r, err, errlen) != 0)
        return -1;
    if (f != a->format || r != a->rounding) {
        snprintf(err, errlen, "%s: /params/%s is %s/%s but the file is %s/%s (one format per file)",
                 path, name, mx_format_name(f), r == MX_ROUND_EVEN ? "even" : "nearest",
                 mx_format_name(a->format), a->rounding == MX_ROUND_EVEN ? "even" : "nearest");
        return -1;
    }
    if (!shape || shape->type != QT_CK_ATTR_INT || shape->n != 2 || shape->ints[0] < 1 ||
        shape->ints[1] < 1 || (uint64_t)shape->ints[0] > SIZE_MAX / 8 / (uint64_t)shape->ints[1]) {
        snprintf(err, errlen, "%s: attribute 'shape' of /params/%s is %s (expected [out, in])",
                 path, name, shape ? "invalid" : "missing");
        return -1;
    }
    size_t rows = (size_t)shape->ints[0], cols = (size_t)shape->ints[1];
    size_t packed = mx_packed_size(f, rows * cols), nb = mx_num_blocks(cols);
    if (el->dtype != QT_CK_U8 || el->ndim != 1 || (size_t)el->shape[0] != packed) {
        snprintf(err, errlen,
                 "%s: /params/%s must be uint8 [%zu] (%zu x %zu %s codes packed), found %s with "
                 "%d dimensions",
                 path, el_name, packed, rows, cols, mx_format_name(f),
                 el->dtype == QT_CK_U8 ? "uint8" : "float32", el->ndim);
        return -1;
    }
    if (sc->dtype != QT_CK_U8 || sc->ndim != 2 || (size_t)sc->shape[0] != rows ||
        (size_t)sc->shape[1] != nb) {
        snprintf(err, errlen,
                 "%s: /params/%s must be uint8 [%zu, %zu] (one E8M0 byte per block "
                 "of 32)",
                 path, sc_name, rows, nb);
        return -1;
    }
    snprintf(t->name, sizeof t->name, "%s", name);
    t->quantized = true;
    t->ndim = 2;
    t->shape[0] = (int64_t)rows;
    t->shape[1] = (int64_t)cols;
    if (!(t->codes = malloc(rows * cols)) || !(t->scales = malloc(rows * nb))) {
        snprintf(err, errlen, "%s: out of memory for /params/%s", path, name);
        return -1;
    }
    mx_unpack(el->data, rows * cols, f, t->codes);
    memcpy(t->scales, sc->data, rows * nb);
    return 0;
}

/* The provenance of a kind "ptq" file: method, alpha, calibration batches. */
static int read_ptq_attrs(qt_anchor_ckpt *a, const qt_ckpt *ck, const char *path, char *err,
                          size_t errlen) {
    const qt_ckpt_attr *m = qt_ckpt_find_attr(ck, "", "ptq_method");
    const qt_ckpt_attr *al = qt_ckpt_find_attr(ck, "", "ptq_alpha");
    const qt_ckpt_attr *cb = qt_ckpt_find_attr(ck, "", "ptq_calib_batches");
    char *end = NULL;
    if (!m || m->type != QT_CK_ATTR_STR || !m->str[0] || strlen(m->str) >= sizeof a->ptq_method ||
        !al || al->type != QT_CK_ATTR_STR || !cb || cb->type != QT_CK_ATTR_INT || cb->n != 1 ||
        cb->ints[0] < 0) {
        snprintf(err, errlen,
                 "%s: a 'ptq' file needs root attributes ptq_method (string), ptq_alpha (string) "
                 "and ptq_calib_batches (integer >= 0)",
                 path);
        return -1;
    }
    a->ptq_alpha = strtod(al->str, &end);
    if (end == al->str || *end) {
        snprintf(err, errlen, "%s: root attribute ptq_alpha is '%s', not a number", path, al->str);
        return -1;
    }
    snprintf(a->ptq_method, sizeof a->ptq_method, "%s", m->str);
    a->ptq_calib_batches = cb->ints[0];
    return 0;
}

/* "NAME/elements" -> 1 with NAME in base; "NAME/scales" -> 2; anything else 0. */
static int part_of(const char *name, char *base, size_t baselen) {
    static const char *const parts[2] = {"/elements", "/scales"};
    size_t n = strlen(name);
    for (int k = 0; k < 2; k++) {
        size_t pl = strlen(parts[k]);
        if (n > pl && strcmp(name + n - pl, parts[k]) == 0) {
            snprintf(base, baselen, "%.*s", (int)(n - pl), name);
            return k + 1;
        }
    }
    return 0;
}

int qt_anchor_from_ckpt(qt_anchor_ckpt *a, const qt_ckpt *ck, const char *path, char *err,
                        size_t errlen) {
    memset(a, 0, sizeof *a);
    if (ck->kind != QT_CKPT_ANCHOR && ck->kind != QT_CKPT_PTQ) {
        snprintf(err, errlen, "%s: is a '%s' checkpoint, not an anchor (kind 'anchor' or 'ptq')",
                 path, qt_ckpt_kind_name(ck->kind));
        return -1;
    }
    a->source = MX_FP32;
    if (attr_format(ck, "", "format", path, &a->format, err, errlen) != 0 ||
        attr_rounding(ck, "", path, &a->rounding, err, errlen) != 0 ||
        (ck->kind == QT_CKPT_PTQ && read_ptq_attrs(a, ck, path, err, errlen) != 0))
        goto fail;
    if (qt_ckpt_find_attr(ck, "", "source_format") &&
        attr_format(ck, "", "source_format", path, &a->source, err, errlen) != 0)
        goto fail;
    a->step = ck->step;
    a->model_hash = ck->model_hash;
    const char *cfg = ck->config_text ? ck->config_text : "";
    if (!(a->config_text = malloc(strlen(cfg) + 1)) ||
        !(a->t = calloc(ck->n_params ? ck->n_params : 1, sizeof *a->t))) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    strcpy(a->config_text, cfg);
    for (size_t i = 0; i < ck->n_params; i++) {
        const qt_ckpt_tensor *p = &ck->params[i];
        char base[QT_CKPT_NAME_MAX];
        int part = part_of(p->name, base, sizeof base);
        if (p->dtype == QT_CK_U8 && part == 1) {
            if (read_quantized(a, ck, base, &a->t[a->n++], path, err, errlen) != 0)
                goto fail;
        } else if (p->dtype == QT_CK_U8 && part == 2) {
            /* The pair is read (and checked) at its elements dataset. */
            char el[QT_CKPT_NAME_MAX + 16];
            snprintf(el, sizeof el, "%s/elements", base);
            if (!qt_ckpt_find(ck->params, ck->n_params, el)) {
                snprintf(err, errlen, "%s: /params/%s has no elements beside it", path, p->name);
                goto fail;
            }
        } else if (p->dtype == QT_CK_F32 && part == 0) {
            qt_anchor_tensor *t = &a->t[a->n++];
            size_t numel = 1;
            for (int d = 0; d < p->ndim; d++)
                numel *= (size_t)p->shape[d];
            snprintf(t->name, sizeof t->name, "%s", p->name);
            t->ndim = p->ndim;
            memcpy(t->shape, p->shape, sizeof t->shape);
            if (!(t->data = malloc(numel * sizeof *t->data))) {
                snprintf(err, errlen, "%s: out of memory for /params/%s", path, p->name);
                goto fail;
            }
            memcpy(t->data, p->data, numel * sizeof *t->data);
        } else {
            snprintf(err, errlen,
                     "%s: /params/%s is %s; an anchor holds float32 tensors and uint8 "
                     "NAME/elements, NAME/scales pairs only",
                     path, p->name, p->dtype == QT_CK_U8 ? "uint8" : "float32");
            goto fail;
        }
    }
    return 0;
fail:
    qt_anchor_free(a);
    return -1;
}

int qt_anchor_read(const char *path, qt_anchor_ckpt *a, char *err, size_t errlen) {
    qt_ckpt ck;
    memset(a, 0, sizeof *a);
    if (qt_ckpt_read(path, &ck, err, errlen) != 0)
        return -1;
    int rc = qt_anchor_from_ckpt(a, &ck, path, err, errlen);
    qt_ckpt_free(&ck);
    return rc;
}
