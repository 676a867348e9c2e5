/* cli.c — what every tool's main() ends with: usage on --help or bad arguments, the error buffer,
 * the run, and its message on failure. */
#include "train/run/train.h"

#include <stdlib.h>

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
