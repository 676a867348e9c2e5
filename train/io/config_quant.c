/* config_quant.c — the lists of [quant] (format names and sampling weights) and [lora] (adapter
 * targets), each checked as a whole. */
#include "train/io/config_keys.h"

#include "quant/mx.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Split s at commas into trimmed items (in place in buf). Returns the count, or -1 if > max. */
static int split_list(const char *s, char *buf, size_t buflen, char **items, int max) {
    snprintf(buf, buflen, "%s", s);
    int n = 0;
    for (char *p = buf;;) {
        char *end = strchr(p, ',');
        if (end)
            *end = '\0';
        while (*p == ' ' || *p == '\t')
            p++;
        size_t len = strlen(p);
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            p[--len] = '\0';
        if (n == max)
            return -1;
        items[n++] = p;
        if (!end)
            return n;
        p = end + 1;
    }
}

static const char *origin_of(const qt_config *c, const char *section, const char *key) {
    int idx = qt_cfg_find(section, key);
    return c->origin && idx >= 0 ? c->origin[idx] : "?";
}

static const char *origin(const qt_config *c, const char *key) {
    return origin_of(c, "quant", key);
}

int qt_config_format_set(const qt_config *c, qt_format_set *out, char *err, size_t errlen) {
    char buf[QT_PATH_MAX], *items[QT_MAX_FORMATS + 1];
    memset(out, 0, sizeof *out);
    int n = split_list(c->quant.formats, buf, sizeof buf, items, QT_MAX_FORMATS);
    if (n < 0) {
        snprintf(err, errlen, "%s: [quant] formats: more than %d formats", origin(c, "formats"),
                 QT_MAX_FORMATS);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        mx_format f;
        if (mx_format_parse(items[i], &f) != 0 || !mx_format_is_mx(f)) {
            snprintf(err, errlen,
                     "%s: [quant] formats: '%s' is not an MX format (expected names like mxint8, "
                     "mxint4, mxfp8_e4m3, mxfp4_e2m1)",
                     origin(c, "formats"), items[i]);
            return -1;
        }
        for (int j = 0; j < i; j++)
            if (out->formats[j] == (int)f) {
                snprintf(err, errlen, "%s: [quant] formats: '%s' listed twice",
                         origin(c, "formats"), items[i]);
                return -1;
            }
        out->formats[i] = (int)f;
    }
    out->n = n;
    if (c->quant.mode == QT_QUANT_SINGLE && n != 1) {
        snprintf(err, errlen, "%s: [quant] formats lists %d formats, but mode = single needs one",
                 origin(c, "formats"), n);
        return -1;
    }
    if (strcmp(c->quant.format_weights, "uniform") == 0) {
        for (int i = 0; i < n; i++)
            out->weights[i] = 1.0 / n;
        return 0;
    }
    char wbuf[QT_PATH_MAX], *w[QT_MAX_FORMATS + 1];
    int nw = split_list(c->quant.format_weights, wbuf, sizeof wbuf, w, QT_MAX_FORMATS);
    if (nw != n) {
        snprintf(err, errlen, "%s: [quant] format_weights has %d entries for %d formats",
                 origin(c, "format_weights"), nw < 0 ? QT_MAX_FORMATS + 1 : nw, n);
        return -1;
    }
    double sum = 0;
    for (int i = 0; i < n; i++) {
        char *end;
        double v = strtod(w[i], &end);
        if (end == w[i] || *end || !isfinite(v) || v <= 0) {
            snprintf(err, errlen,
                     "%s: [quant] format_weights: '%s' is not a positive number (or write "
                     "'uniform')",
                     origin(c, "format_weights"), w[i]);
            return -1;
        }
        out->weights[i] = v;
        sum += v;
    }
    for (int i = 0; i < n; i++)
        out->weights[i] /= sum;
    return 0;
}

int qt_config_lora_targets(const qt_config *c, unsigned *mask, char *err, size_t errlen) {
    static const char *const names[QT_LORA_NTARGETS] = {"q", "k", "v", "o", "up", "down"};
    char buf[QT_PATH_MAX], *items[QT_LORA_NTARGETS + 1];
    *mask = 0;
    if (strcmp(c->lora.targets, "all-linear") == 0) {
        *mask = (1u << QT_LORA_NTARGETS) - 1;
        return 0;
    }
    int n = split_list(c->lora.targets, buf, sizeof buf, items, QT_LORA_NTARGETS);
    for (int i = 0; i < n; i++) {
        int t = -1;
        for (int k = 0; k < QT_LORA_NTARGETS; k++)
            if (strcmp(items[i], names[k]) == 0)
                t = k;
        if (t < 0 || (*mask & (1u << t))) {
            snprintf(err, errlen,
                     "%s: [lora] targets: '%s' %s (expected all-linear, or a list of q, k, v, o, "
                     "up, down)",
                     origin_of(c, "lora", "targets"), items[i],
                     t < 0 ? "is not a layer" : "is listed twice");
            *mask = 0;
            return -1;
        }
        *mask |= 1u << t;
    }
    if (n < 0) {
        snprintf(err, errlen, "%s: [lora] targets: more than %d layers",
                 origin_of(c, "lora", "targets"), QT_LORA_NTARGETS);
        *mask = 0;
        return -1;
    }
    return 0;
}
