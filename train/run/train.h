/* train.h — the training run behind `qat-train`: setup, resume, the step loop, evaluation and
 * checkpoints. The CLI only parses arguments and installs signal handlers. */
#ifndef QAT_TRAIN_RUN_TRAIN_H
#define QAT_TRAIN_RUN_TRAIN_H

#include "quant/mx.h"

#include <signal.h>
#include <stdio.h>
#include <stdint.h>

/* Exit codes of every qat CLI (DESIGN.md). */
enum {
    QT_EXIT_OK = 0,
    QT_EXIT_INTERNAL = 1, /* out of memory, arena limits: a bug or an undersized machine */
    QT_EXIT_USAGE = 2,    /* command line or config */
    QT_EXIT_DATA = 3,     /* corpus */
    QT_EXIT_CKPT = 4,     /* unreadable, corrupt or mismatching checkpoint; failed write */
    QT_EXIT_NUMERIC = 5,  /* non-finite loss or gradient */
    QT_EXIT_INTERRUPTED = 130
};

typedef struct qt_train_opts {
    const char *config_path;
    const char *resume;      /* NULL: fresh run; "auto": newest valid checkpoint; else a path */
    const char *const *sets; /* "section.key=value" overrides, applied after the file */
    int n_sets;
    int64_t stop_after;          /* > 0: checkpoint and exit 0 once this many steps are done */
    int64_t debug_nan_at;        /* > 0: test hook, the loss of this step is made NaN */
    volatile sig_atomic_t *stop; /* set by a signal handler: checkpoint and exit 130 */
} qt_train_opts;

/* Run training; messages go to stderr. Returns one of the exit codes above. */
int qt_train(const qt_train_opts *o);

/* The shared end of the tools' main() (cli.c). parsed is their argument parser's result: 0
 * parsed, 1 --help (usage to stdout, exit 0), -1 bad arguments (already said why; usage to
 * stderr, exit 2). Otherwise run(opts, err) runs with a QT_CLI_ERRLEN-byte message buffer and a
 * failure is printed as "PROG: message". Returns the exit code. */
#define QT_CLI_ERRLEN 2048
int qt_cli_main(const char *prog, int parsed, void (*usage)(FILE *f),
                int (*run)(void *opts, char *err), void *opts);

/* Arguments that are all "--name value" string options: each value goes to its option's slot
 * (slots start NULL; a repeated option keeps the last). Returns 0 parsed, 1 for --help/-h, -1 for
 * an unknown option or one without a value (message printed, prefixed with prog). */
typedef struct qt_cli_opt {
    const char *name; /* "--out" */
    const char **slot;
} qt_cli_opt;
int qt_cli_parse_strings(const char *prog, int argc, char **argv, const qt_cli_opt *opts, int n);
/* The MX format named by option opt ("--format"): 0, or -1 with a message listing the nine. */
int qt_cli_mx_format(const char *opt, const char *name, mx_format *f, char *err, size_t errlen);

#endif
