/* progress.h — the live progress line of long runs: redrawn in place on a terminal, plain log
 * lines every log_every steps otherwise (so logs stay readable when redirected). */
#ifndef QAT_TRAIN_RUN_PROGRESS_H
#define QAT_TRAIN_RUN_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct qt_progress {
    FILE *out;
    bool tty;
    int64_t total, first, log_every;
    double t0;  /* seconds at the first step of this process */
    bool drawn; /* a partial line is on screen */
} qt_progress;

double qt_now(void);         /* monotonic seconds */
double qt_peak_rss_mb(void); /* the process's peak resident set so far, MiB (0 if unknown) */

void qt_progress_init(qt_progress *p, FILE *out, int64_t first_step, int64_t total_steps,
                      int64_t log_every);
/* step = completed steps so far. */
void qt_progress_update(qt_progress *p, int64_t step, double loss, double lr, double tokens_per_s,
                        const char *format);
/* Print a full line (e.g. an evaluation result) without garbling the live line. */
void qt_progress_println(qt_progress *p, const char *fmt, ...);
void qt_progress_done(qt_progress *p);

#endif
