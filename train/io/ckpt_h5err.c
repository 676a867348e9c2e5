/* ckpt_h5err.c — keeping HDF5 quiet and turning its error stack into one line of our message.
 *
 * HDF5 prints a multi-line stack trace to stderr on every failed call unless told otherwise, and
 * its most useful text ("truncated file: eof = ...", "data error detected by Fletcher32
 * checksum") sits at the innermost end of that stack. */
#include "train/io/ckpt_internal.h"

#include <hdf5.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void qt_ck_h5_quiet_begin(qt_ck_h5quiet *q) {
    H5E_auto2_t func = NULL;
    void *data = NULL;
    q->saved = H5Eget_auto2(H5E_DEFAULT, &func, &data) >= 0;
    /* void (*)(void) is C's generic function pointer; it converts back losslessly. */
    q->func = (void (*)(void))func;
    q->data = data;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void qt_ck_h5_quiet_end(const qt_ck_h5quiet *q) {
    if (!q->saved)
        return;
    H5Eset_auto2(H5E_DEFAULT, (H5E_auto2_t)q->func, q->data);
}

typedef struct walk {
    char *buf;
    size_t len;
    int found;
} walk;

/* Upward walks start at the innermost (deepest) frame: keep the first description only. */
static herr_t take_first(unsigned n, const H5E_error2_t *e, void *user) {
    (void)n;
    walk *w = user;
    if (!w->found && e->desc && e->desc[0]) {
        snprintf(w->buf, w->len, "%s", e->desc);
        w->found = 1;
    }
    return 0;
}

void qt_ck_h5_innermost(char *buf, size_t buflen) {
    walk w = {buf, buflen, 0};
    if (buflen)
        buf[0] = 0;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, take_first, &w);
}

void qt_ck_h5_fail(char *err, size_t errlen, const char *fmt, ...) {
    char inner[256];
    qt_ck_h5_innermost(inner, sizeof inner); /* before anything else touches the stack */
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    size_t used = strlen(err);
    if (inner[0] && used < errlen)
        snprintf(err + used, errlen - used, " (HDF5: %s)", inner);
}
