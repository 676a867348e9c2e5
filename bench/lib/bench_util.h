/* bench_util.h — clocks and summary statistics shared by the benchmarks: wall and process CPU
 * time, and median/mean/min/max of a set of timings. */
#ifndef QAT_BENCH_LIB_BENCH_UTIL_H
#define QAT_BENCH_LIB_BENCH_UTIL_H

typedef struct bench_stats {
    double median, mean, min, max;
} bench_stats;

double bench_now_s(void); /* monotonic wall seconds */
/* User + system CPU seconds of this process (all threads). */
double bench_cpu_s(void);

/* Summary of v[0..n) (n >= 1; all zero for n < 1); v is sorted in place. */
bench_stats bench_summarize(double *v, int n);

#endif
