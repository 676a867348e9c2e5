/* ckpt.c — the small shared pieces of the checkpoint module: kind names, lookup, release, name and
 * shape validation, errno text. */
#define _POSIX_C_SOURCE 200809L

#include "train/io/ckpt_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *qt_ckpt_kind_name(qt_ckpt_kind k) {
    switch (k) {
    case QT_CKPT_TRAIN:
        return "train";
    case QT_CKPT_ANCHOR:
        return "anchor";
    case QT_CKPT_PTQ:
        return "ptq";
    }
    return "?";
}

const qt_ckpt_tensor *qt_ckpt_find(const qt_ckpt_tensor *arr, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(arr[i].name, name) == 0)
            return &arr[i];
    return NULL;
}

static void free_tensors(qt_ckpt_tensor *t, size_t n) {
    if (!t)
        return;
    for (size_t i = 0; i < n; i++)
        free(t[i].data);
    free(t);
}

void qt_ckpt_free(qt_ckpt *ck) {
    if (!ck)
        return;
    free_tensors(ck->optim, ck->n_optim);
    free_tensors(ck->params, ck->n_params);
    free(ck->rngs);
    /* config_text is const for writers (they lend it); after qt_ckpt_read it is ours to free. */
    free((void *)ck->config_text);
    memset(ck, 0, sizeof *ck);
}

int qt_ck_check_name(const char *name, size_t maxlen, const char **why) {
    size_t len = name ? strnlen(name, maxlen) : 0;
    if (len == 0) {
        *why = "empty name";
        return -1;
    }
    if (len >= maxlen) {
        *why = "name too long";
        return -1;
    }
    /* HDF5 would silently reinterpret these: "a//b" is "a/b", "./a" is "a", "/a" is absolute. */
    const char *c = name;
    for (;;) {
        const char *slash = strchr(c, '/');
        size_t n = slash ? (size_t)(slash - c) : strlen(c);
        if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.')) {
            *why = "empty, '.' or '..' path component";
            return -1;
        }
        if (!slash)
            break;
        c = slash + 1;
    }
    return 0;
}

size_t qt_ck_dtype_size(qt_ck_dtype d) {
    switch (d) {
    case QT_CK_F32:
        return 4;
    case QT_CK_U8:
        return 1;
    }
    return 0;
}

size_t qt_ck_nbytes(qt_ck_dtype d, int ndim, const int64_t *shape) {
    size_t n = qt_ck_dtype_size(d);
    if (n == 0 || ndim < 1 || ndim > 4)
        return 0;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1 || (uint64_t)shape[i] > SIZE_MAX / n)
            return 0;
        n *= (size_t)shape[i];
    }
    return n;
}

const char *qt_ck_strerror(int errnum, char *buf, size_t buflen) {
    /* The XSI strerror_r (selected by _POSIX_C_SOURCE without _GNU_SOURCE) fills buf. */
    if (strerror_r(errnum, buf, buflen) != 0)
        snprintf(buf, buflen, "errno %d", errnum);
    return buf;
}
