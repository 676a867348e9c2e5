/* metrics.c — writing metrics.csv, and trimming it back to a checkpoint on resume. */
#define _POSIX_C_SOURCE 200809L
#include "train/io/metrics.h"

#include <errno.h>
#include <stdbool.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Rewrite path keeping the header and rows with step <= keep_until (via a temp file + rename,
 * so an interruption here cannot lose the log). */
static int trim(const char *path, int64_t keep_until, char *err, size_t errlen) {
    FILE *in = fopen(path, "r");
    if (!in)
        return errno == ENOENT ? 0 : -1;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *out = fopen(tmp, "w");
    if (!out) {
        snprintf(err, errlen, "cannot write '%s': %s", tmp, strerror(errno));
        fclose(in);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    bool first = true;
    while ((n = getline(&line, &cap, in)) > 0) {
        char *end;
        long long step = strtoll(line, &end, 10);
        if (first || (end != line && *end == ',' && step <= keep_until))
            fputs(line, out);
        first = false;
    }
    free(line);
    fclose(in);
    if (fclose(out) != 0 || rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot rewrite '%s': %s", path, strerror(errno));
        remove(tmp);
        return -1;
    }
    return 0;
}

FILE *qt_metrics_open(const char *path, int64_t keep_until, const char *extra, char *err,
                      size_t errlen) {
    if (keep_until >= 0 && trim(path, keep_until, err, errlen) != 0)
        return NULL;
    FILE *f = fopen(path, keep_until >= 0 ? "a" : "w");
    if (!f) {
        snprintf(err, errlen, "cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    if (ftell(f) == 0)
        fprintf(f, "%s%s%s\n", QT_METRICS_HEADER, extra && extra[0] ? "," : "", extra ? extra : "");
    fflush(f);
    return f;
}

int qt_metrics_write(FILE *f, const qt_metrics_row *r) {
    char val[32] = "";
    if (!isnan(r->val_loss))
        snprintf(val, sizeof val, "%.9g", r->val_loss);
    fprintf(f, "%" PRId64 ",%" PRId64 ",%.9g,%s,%.9g,%s,%.9g,%.3f,%.1f", r->step, r->tokens, r->lr,
            r->format, r->loss, val, r->grad_norm, r->ms_per_step, r->tokens_per_s);
    for (int i = 0; i < r->n_extra; i++) {
        if (isnan(r->extra[i]))
            fputc(',', f);
        else
            fprintf(f, ",%.9g", r->extra[i]);
    }
    fputc('\n', f);
    return fflush(f) == 0 ? 0 : -1;
}
