/* metrics.h — metrics.csv: one row per logged step. The first columns are fixed by DESIGN.md; the
 * sft and grpo modes append their own after them (docs/GRPO.md lists them), so readers that
 * know only the base columns keep working. */
#ifndef QAT_TRAIN_IO_METRICS_H
#define QAT_TRAIN_IO_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define QT_METRICS_HEADER "step,tokens,lr,format,loss,val_loss,grad_norm,ms_per_step,tokens_per_s"

typedef struct qt_metrics_row {
    int64_t step, tokens;
    double lr;
    const char *format;
    double loss, val_loss; /* val_loss NAN = not evaluated this step (empty field) */
    double grad_norm, ms_per_step, tokens_per_s;
    const double *extra; /* n_extra values of the mode's extra columns (NAN = empty field) */
    int n_extra;
} qt_metrics_row;

/* Open path for appending rows. A fresh run (keep_until < 0) truncates and writes the header; a
 * resumed run keeps only the rows with step <= keep_until, so the file then continues exactly as
 * an uninterrupted run would have written it. Returns NULL with a message on failure. */
/* extra: the names of the extra columns, comma-separated ("" or NULL: none). */
FILE *qt_metrics_open(const char *path, int64_t keep_until, const char *extra, char *err,
                      size_t errlen);
/* Losses are written with 9 significant digits: enough to tell float results apart bit for bit. */
int qt_metrics_write(FILE *f, const qt_metrics_row *r);

#endif
