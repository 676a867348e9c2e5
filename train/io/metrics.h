/* metrics.h — metrics.csv: one row per logged step, header fixed by DESIGN.md. */
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
} qt_metrics_row;

/* Open path for appending rows. A fresh run (keep_until < 0) truncates and writes the header; a
 * resumed run keeps only the rows with step <= keep_until, so the file then continues exactly as
 * an uninterrupted run would have written it. Returns NULL with a message on failure. */
FILE *qt_metrics_open(const char *path, int64_t keep_until, char *err, size_t errlen);
/* Losses are written with 9 significant digits: enough to tell float results apart bit for bit. */
int qt_metrics_write(FILE *f, const qt_metrics_row *r);

#endif
