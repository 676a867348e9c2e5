/* schedule.c — learning-rate schedules: linear warm-up, then cosine, linear or constant.
 *
 * Both decays are written as a weighted mean w·lr + (1−w)·min_lr with w going from 1 to 0, so the
 * first decay step returns lr and the last returns min_lr exactly (w is exactly 1 and 0 there). */
#include "optim/opt.h"

#include <math.h>

#define OPT_PI 3.14159265358979323846

const char *opt_schedule_name(opt_schedule s) {
    switch (s) {
    case OPT_SCHED_COSINE:
        return "cosine";
    case OPT_SCHED_LINEAR:
        return "linear";
    case OPT_SCHED_CONSTANT:
        return "constant";
    default:
        return "unknown";
    }
}

double opt_schedule_lr(opt_schedule kind, double lr, double min_lr, int64_t warmup,
                       int64_t total_steps, int64_t step) {
    if (step < 0)
        step = 0;
    if (warmup < 0)
        warmup = 0;
    if (total_steps < 1)
        total_steps = 1;
    if (step < warmup)
        return lr * (double)(step + 1) / (double)warmup;
    if (kind != OPT_SCHED_COSINE && kind != OPT_SCHED_LINEAR)
        return lr;
    /* Decay spans steps warmup .. total_steps−1; with no room for it the rate stays at lr. */
    int64_t span = total_steps - 1 - warmup;
    if (span <= 0)
        return lr;
    if (step >= total_steps - 1)
        return min_lr;
    double progress = (double)(step - warmup) / (double)span; /* in [0, 1) */
    double w = kind == OPT_SCHED_COSINE ? 0.5 * (1.0 + cos(OPT_PI * progress)) : 1.0 - progress;
    return w * lr + (1.0 - w) * min_lr;
}
