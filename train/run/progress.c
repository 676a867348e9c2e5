/* progress.c — progress line with ETA. */
#define _POSIX_C_SOURCE 200809L
#include "train/run/progress.h"

#include <stdarg.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

double qt_peak_rss_mb(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)ru.ru_maxrss / 1024.0; /* Linux reports KiB */
}

double qt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void qt_progress_init(qt_progress *p, FILE *out, int64_t first_step, int64_t total_steps,
                      int64_t log_every) {
    p->out = out;
    p->tty = isatty(fileno(out));
    p->first = first_step;
    p->total = total_steps;
    p->log_every = log_every > 0 ? log_every : 1;
    p->t0 = qt_now();
    p->drawn = false;
}

static void fmt_eta(char *buf, size_t n, double s) {
    if (s < 0 || s != s)
        snprintf(buf, n, "?");
    else if (s < 60)
        snprintf(buf, n, "%.0fs", s);
    else if (s < 3600)
        snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else
        snprintf(buf, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

void qt_progress_update(qt_progress *p, int64_t step, double loss, double lr, double tokens_per_s,
                        const char *format) {
    bool last = step >= p->total;
    if (!p->tty && !last && step % p->log_every != 0)
        return;
    double done = (double)(step - p->first), el = qt_now() - p->t0;
    char eta[32];
    fmt_eta(eta, sizeof eta, done > 0 ? el / done * (double)(p->total - step) : -1);
    fprintf(p->out, "%sstep %lld/%lld | loss %.4f | lr %.2e | %s | %.0f tok/s | ETA %s%s",
            p->tty ? "\r\033[K" : "", (long long)step, (long long)p->total, loss, lr, format,
            tokens_per_s, eta, p->tty ? "" : "\n");
    p->drawn = p->tty;
    fflush(p->out);
}

void qt_progress_println(qt_progress *p, const char *fmt, ...) {
    if (p->drawn)
        fputs("\r\033[K", p->out);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->out, fmt, ap);
    va_end(ap);
    fputc('\n', p->out);
    p->drawn = false;
    fflush(p->out);
}

void qt_progress_done(qt_progress *p) {
    if (p->drawn)
        fputc('\n', p->out);
    p->drawn = false;
    fflush(p->out);
}
