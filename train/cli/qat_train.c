/* qat_train.c — `qat-train CONFIG.ini [--resume auto|PATH] [--set section.key=value]...` */
#define _POSIX_C_SOURCE 200809L
#include "train/io/config.h"
#include "train/run/train.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t
    g_stop; /* the one global: a signal handler has nowhere else to write */

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static void usage(FILE *f) {
    fputs(
        "usage: qat-train CONFIG.ini [options]\n"
        "  --resume auto|PATH     continue from the newest valid checkpoint in out_dir/ckpt, or "
        "PATH\n"
        "  --set SECTION.KEY=VAL  override a config key (repeatable; same validation as the file)\n"
        "  --stop-after N         checkpoint and exit 0 once N steps are done (for time-sliced "
        "jobs)\n"
        "  --help-config          list every config key with its default, range and meaning\n"
        "  --debug-nan-at N       test hook: make the loss of step N NaN\n"
        "Ctrl-C (SIGINT) or SIGTERM finishes the current step, writes a checkpoint and exits 130;\n"
        "a second Ctrl-C aborts at once (the last checkpoint stays intact).\n"
        "Exit codes: 0 ok, 2 usage/config, 3 data, 4 checkpoint, 5 non-finite loss, 130 "
        "interrupted.\n",
        f);
}

static int parse_count(const char *flag, const char *s, int64_t *out) {
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || v <= 0) {
        fprintf(stderr, "qat-train: %s expects a positive integer, got '%s'\n", flag, s);
        return -1;
    }
    *out = v;
    return 0;
}

int main(int argc, char **argv) {
    qt_train_opts o = {.stop = &g_stop};
    const char **sets = calloc((size_t)argc, sizeof *sets);
    int rc = QT_EXIT_USAGE;
    if (!sets)
        return QT_EXIT_INTERNAL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            rc = QT_EXIT_OK;
            goto out;
        } else if (!strcmp(a, "--help-config")) {
            qt_config_print_help(stdout);
            rc = QT_EXIT_OK;
            goto out;
        } else if (!strcmp(a, "--resume") && has_val) {
            o.resume = argv[++i];
        } else if (!strcmp(a, "--set") && has_val) {
            sets[o.n_sets++] = argv[++i];
        } else if (!strncmp(a, "--set=", 6)) {
            sets[o.n_sets++] = a + 6;
        } else if (!strcmp(a, "--stop-after") && has_val) {
            if (parse_count(a, argv[++i], &o.stop_after) != 0)
                goto out;
        } else if (!strcmp(a, "--debug-nan-at") && has_val) {
            if (parse_count(a, argv[++i], &o.debug_nan_at) != 0)
                goto out;
        } else if (a[0] == '-') {
            fprintf(stderr, "qat-train: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            goto out;
        } else if (!o.config_path) {
            o.config_path = a;
        } else {
            fprintf(stderr, "qat-train: more than one config file ('%s', '%s')\n", o.config_path,
                    a);
            goto out;
        }
    }
    if (!o.config_path) {
        usage(stderr);
        goto out;
    }
    o.sets = sets;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = (int)SA_RESETHAND; /* a second signal gets the default action */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    rc = qt_train(&o);
out:
    free(sets);
    return rc;
}
