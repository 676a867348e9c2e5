/* cli.c — what every tool's main() ends with: usage on --help or bad arguments, the error buffer,
 * the run, and its message on failure. */
#include "train/run/train.h"

#include <stdlib.h>
#include <string.h>

int qt_cli_parse_strings(const char *prog, int argc, char **argv, const qt_cli_opt *opts, int n) {
    for (int i = 0; i < n; i++)
        *opts[i].slot = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h"))
            return 1;
        const char **slot = NULL;
        for (int k = 0; k < n && !slot; k++)
            if (!strcmp(a, opts[k].name))
                slot = opts[k].slot;
        if (!slot || !v) {
            fprintf(stderr, "%s: unknown or incomplete option '%s'\n", prog, a);
            return -1;
        }
        *slot = v;
        i++;
    }
    return 0;
}

int qt_cli_main(const char *prog, int parsed, void (*usage)(FILE *f),
                int (*run)(void *opts, char *err), void *opts) {
    if (parsed != 0) {
        usage(parsed > 0 ? stdout : stderr);
        return parsed > 0 ? QT_EXIT_OK : QT_EXIT_USAGE;
    }
    char *err = calloc(1, QT_CLI_ERRLEN);
    if (!err)
        return QT_EXIT_INTERNAL;
    int rc = run(opts, err);
    if (rc != QT_EXIT_OK)
        fprintf(stderr, "%s: %s\n", prog, err[0] ? err : "failed");
    free(err);
    return rc;
}

int qt_cli_mx_format(const char *opt, const char *name, mx_format *f, char *err, size_t errlen) {
    if (mx_format_parse(name, f) == 0 && mx_format_is_mx(*f))
        return 0;
    snprintf(err, errlen,
             "%s: '%s' is not an MX format (expected mxint8, mxint6, mxint4, mxint2, mxfp8_e4m3, "
             "mxfp8_e5m2, mxfp6_e3m2, mxfp6_e2m3, mxfp4_e2m1)",
             opt, name);
    return -1;
}
