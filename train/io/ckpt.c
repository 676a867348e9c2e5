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

const qt_ckpt_attr *qt_ckpt_find_attr(const qt_ckpt *ck, const char *obj, const char *name) {
    for (size_t i = 0; i < ck->n_attrs; i++)
        if (strcmp(ck->attrs[i].obj, obj) == 0 && strcmp(ck->attrs[i].name, name) == 0)
            return &ck->attrs[i];
    return NULL;
}

static void attr_init(qt_ckpt_attr *a, const char *obj, const char *name, qt_ck_attr_type type) {
    memset(a, 0, sizeof *a);
    snprintf(a->obj, sizeof a->obj, "%s", obj);
    snprintf(a->name, sizeof a->name, "%s", name);
    a->type = type;
}

void qt_ckpt_attr_str(qt_ckpt_attr *a, const char *obj, const char *name, const char *s) {
    attr_init(a, obj, name, QT_CK_ATTR_STR);
    snprintf(a->str, sizeof a->str, "%s", s);
}

void qt_ckpt_attr_ints(qt_ckpt_attr *a, const char *obj, const char *name, const int64_t *v,
                       int n) {
    attr_init(a, obj, name, QT_CK_ATTR_INT);
    a->n = n; /* out of range is the writer's to refuse */
    for (int i = 0; i < n && i < QT_CKPT_ATTR_INTS; i++)
        a->ints[i] = v[i];
}

int qt_ck_is_fixed_root_attr(const char *name) {
    static const char *const fixed[] = {"qat_format_version", "kind",    "step", "config",
                                        "model_hash",         "checksum"};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        if (strcmp(name, fixed[i]) == 0)
            return 1;
    return 0;
}

int qt_ck_cmp_attr(const void *a, const void *b) {
    const qt_ckpt_attr *x = *(const qt_ckpt_attr *const *)a, *y = *(const qt_ckpt_attr *const *)b;
    int c = strcmp(x->obj, y->obj);
    return c ? c : strcmp(x->name, y->name);
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
    free(ck->attrs);
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
