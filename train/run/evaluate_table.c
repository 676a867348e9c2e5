/* evaluate_table.c — which formats a table has, and the table itself (text and CSV). */
#define _POSIX_C_SOURCE 200809L
#include "train/run/evaluate.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* "all": fp32, then by bits per element, INT before FP at equal bits. */
static const mx_format all_formats[] = {MX_FP32,     MX_INT8,     MX_FP8_E4M3, MX_FP8_E5M2,
                                        MX_INT6,     MX_FP6_E3M2, MX_FP6_E2M3, MX_INT4,
                                        MX_FP4_E2M1, MX_INT2};
#define N_ALL ((int)(sizeof all_formats / sizeof *all_formats))

int qt_eval_parse_formats(const char *spec, mx_format *out, int max, char *err, size_t errlen) {
    int n = 0;
    if (max < N_ALL) {
        snprintf(err, errlen, "--formats: room for %d formats only", max);
        return -1;
    }
    if (strcmp(spec, "all") == 0) {
        memcpy(out, all_formats, sizeof all_formats);
        return N_ALL;
    }
    out[n++] = MX_FP32; /* the reference row; an explicit fp32 in the list is not a repeat */
    bool fp32_named = false;
    char item[64];
    for (const char *p = spec;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && (*p == ' ' || *p == '\t'))
            p++, len--;
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        snprintf(item, sizeof item, "%.*s", (int)len, p);
        mx_format f;
        if (len == 0 || len >= sizeof item || mx_format_parse(item, &f) != 0) {
            snprintf(err, errlen,
                     "--formats: unknown format '%s' (expected all, or a list of fp32, mxint8, "
                     "mxint6, mxint4, mxint2, mxfp8_e4m3, mxfp8_e5m2, mxfp6_e3m2, mxfp6_e2m3, "
                     "mxfp4_e2m1)",
                     item);
            return -1;
        }
        bool seen = f == MX_FP32 ? fp32_named : false;
        for (int i = 1; i < n; i++)
            seen = seen || out[i] == f;
        if (seen) {
            snprintf(err, errlen, "--formats: '%s' listed twice", item);
            return -1;
        }
        if (f == MX_FP32)
            fp32_named = true;
        else if (n == max) {
            snprintf(err, errlen, "--formats: more than %d formats", max);
            return -1;
        } else
            out[n++] = f;
        if (!end)
            return n;
        p = end + 1;
    }
}

static const qt_eval_row *fp32_row(const qt_eval_row *rows, int n) {
    for (int i = 0; i < n; i++)
        if (rows[i].format == MX_FP32 && !isnan(rows[i].loss))
            return &rows[i];
    return NULL;
}

static bool has_accuracy(const qt_eval_row *rows, int n) {
    for (int i = 0; i < n; i++)
        if (rows[i].has_accuracy)
            return true;
    return false;
}

void qt_eval_print_table(FILE *f, const qt_eval_row *rows, int n) {
    const qt_eval_row *ref = fp32_row(rows, n);
    bool acc = has_accuracy(rows, n);
    fprintf(f, "%-11s %9s %9s %11s %9s%s\n", "format", "bits/elem", "val_loss", "perplexity",
            "Δ vs fp32", acc ? "  accuracy" : "");
    for (int i = 0; i < n; i++) {
        const qt_eval_row *r = &rows[i];
        double bits = mx_format_bits_per_element(r->format);
        if (isnan(r->loss)) {
            fprintf(f, "%-11s %9.2f   skipped: %s\n", mx_format_name(r->format), bits, r->note);
            continue;
        }
        fprintf(f, "%-11s %9.2f %9.4f %11.3f", mx_format_name(r->format), bits, r->loss,
                exp(r->loss));
        if (ref)
            fprintf(f, " %+9.4f", r->loss - ref->loss);
        if (r->has_accuracy)
            fprintf(f, " %8.1f%%", 100 * r->accuracy);
        fputc('\n', f);
    }
}

int qt_eval_write_csv(const char *path, const qt_eval_row *rows, int n, char *err, size_t errlen) {
    char tmp[QT_PATH_MAX + 8];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        snprintf(err, errlen, "%s: path too long", path);
        return -1;
    }
    FILE *fp = fopen(tmp, "w");
    if (!fp) {
        snprintf(err, errlen, "cannot write '%s': %s", tmp, strerror(errno));
        return -1;
    }
    const qt_eval_row *ref = fp32_row(rows, n);
    bool acc = has_accuracy(rows, n);
    fprintf(fp, "format,bits_per_element,val_loss,perplexity,delta_vs_fp32,note%s\n",
            acc ? ",accuracy" : "");
    for (int i = 0; i < n; i++) {
        const qt_eval_row *r = &rows[i];
        fprintf(fp, "%s,%.2f,", mx_format_name(r->format), mx_format_bits_per_element(r->format));
        if (!isnan(r->loss)) {
            fprintf(fp, "%.6f,%.6f,", r->loss, exp(r->loss));
            if (ref)
                fprintf(fp, "%.6f", r->loss - ref->loss);
        } else {
            fputs(",,", fp);
        }
        /* Notes hold no quotes or newlines; commas are quoted. */
        fprintf(fp, strchr(r->note, ',') ? ",\"%s\"" : ",%s", r->note);
        if (r->has_accuracy)
            fprintf(fp, ",%.6f", r->accuracy);
        else if (acc)
            fputc(',', fp);
        fputc('\n', fp);
    }
    int bad = ferror(fp);
    if (fclose(fp) != 0 || bad || rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno ? errno : EIO));
        remove(tmp);
        return -1;
    }
    return 0;
}
