/* ckpt_dir.c — a directory of step_NNNNNNN.h5 checkpoints: naming, picking the newest good one,
 * rotation.
 *
 * Steps are compared as numbers, not names, so step_10000000.h5 (8 digits, past the zero padding)
 * still sorts after step_9999999.h5. Only names this module produces are touched: step_<digits>.h5
 * and their step_*.tmp leftovers; other files in the directory are left alone. */
#define _POSIX_C_SOURCE 200809L

#include "train/io/ckpt_internal.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void qt_ckpt_path(char *out, size_t outlen, const char *dir, int64_t step) {
    snprintf(out, outlen, "%s/step_%07" PRId64 ".h5", dir, step);
}

/* step_<1..18 digits>.h5 -> the step; anything else -> -1. */
static int64_t parse_step(const char *name) {
    if (strncmp(name, "step_", 5) != 0)
        return -1;
    const char *p = name + 5;
    int64_t step = 0;
    int digits = 0;
    for (; *p >= '0' && *p <= '9'; p++, digits++) {
        if (digits == 18) /* keeps step within int64_t */
            return -1;
        step = step * 10 + (*p - '0');
    }
    return digits > 0 && strcmp(p, ".h5") == 0 ? step : -1;
}

static int is_stale_tmp(const char *name) {
    size_t n = strlen(name);
    return strncmp(name, "step_", 5) == 0 && n > 9 && strcmp(name + n - 4, ".tmp") == 0;
}

typedef struct entry {
    int64_t step;
    char *path; /* dir/name, malloc'd */
} entry;

typedef struct listing {
    entry *v;
    size_t n, cap;
} listing;

static void listing_free(listing *l) {
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].path);
    free(l->v);
}

static char *join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (p) {
        memcpy(p, dir, a);
        p[a] = '/';
        memcpy(p + a + 1, name, b + 1);
    }
    return p;
}

static int newest_first(const void *a, const void *b) {
    const entry *x = a, *y = b;
    return x->step < y->step ? 1 : x->step > y->step ? -1 : strcmp(x->path, y->path);
}

/* Lists regular step_*.h5 files, newest first. With remove_tmp, stale step_*.tmp files are deleted
 * on the way. Returns 0, 1 if dir does not exist, or -1 with a message. */
static int scan(const char *dir, int remove_tmp, listing *l, char *err, size_t errlen) {
    char ebuf[128];
    int rc = -1;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            return 1;
        snprintf(err, errlen, "%s: cannot list checkpoint directory: %s", dir,
                 qt_ck_strerror(errno, ebuf, sizeof ebuf));
        return -1;
    }
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            if (errno != 0) {
                snprintf(err, errlen, "%s: cannot list checkpoint directory: %s", dir,
                         qt_ck_strerror(errno, ebuf, sizeof ebuf));
                goto done;
            }
            break;
        }
        int64_t step = parse_step(de->d_name);
        int tmp = remove_tmp && is_stale_tmp(de->d_name);
        if (step < 0 && !tmp)
            continue;
        char *path = join(dir, de->d_name);
        struct stat st;
        if (!path) {
            snprintf(err, errlen, "%s: out of memory", dir);
            goto done;
        }
        if (lstat(path, &st) != 0 || S_ISDIR(st.st_mode)) {
            free(path); /* vanished meanwhile, or a directory we must not touch */
            continue;
        }
        if (tmp) {
            if (unlink(path) != 0 && errno != ENOENT) {
                snprintf(err, errlen, "%s: cannot delete stale %s: %s", dir, de->d_name,
                         qt_ck_strerror(errno, ebuf, sizeof ebuf));
                free(path);
                goto done;
            }
            free(path);
            continue;
        }
        if (!S_ISREG(st.st_mode)) {
            free(path);
            continue;
        }
        if (l->n == l->cap) {
            size_t cap = l->cap ? 2 * l->cap : 16;
            entry *v = realloc(l->v, cap * sizeof *v);
            if (!v) {
                free(path);
                snprintf(err, errlen, "%s: out of memory", dir);
                goto done;
            }
            l->v = v;
            l->cap = cap;
        }
        l->v[l->n].step = step;
        l->v[l->n++].path = path;
    }
    if (l->n)
        qsort(l->v, l->n, sizeof *l->v, newest_first);
    rc = 0;
done:
    closedir(d);
    return rc;
}

int qt_ckpt_find_latest(const char *dir, char *out, size_t outlen,
                        void (*warn)(const char *msg, void *user), void *user, char *err,
                        size_t errlen) {
    listing l = {NULL, 0, 0};
    int rc = scan(dir, 0, &l, err, errlen);
    if (rc != 0) {
        rc = rc > 0 ? 0 : -1; /* no directory yet: no checkpoint, not an error */
        goto done;
    }
    for (size_t i = 0; i < l.n; i++) {
        qt_ckpt ck;
        char why[512];
        if (qt_ckpt_read(l.v[i].path, &ck, why, sizeof why) != 0) {
            if (warn) {
                char msg[640];
                snprintf(msg, sizeof msg, "skipping damaged checkpoint: %s", why);
                warn(msg, user);
            }
            continue;
        }
        qt_ckpt_free(&ck);
        if (strlen(l.v[i].path) >= outlen) {
            snprintf(err, errlen, "%s: path longer than the %zu-byte buffer", l.v[i].path, outlen);
            rc = -1;
            goto done;
        }
        strcpy(out, l.v[i].path);
        rc = 1;
        goto done;
    }
    rc = 0;
done:
    listing_free(&l);
    return rc;
}

int qt_ckpt_prune(const char *dir, int keep, char *err, size_t errlen) {
    char ebuf[128];
    listing l = {NULL, 0, 0};
    int rc = -1;
    if (keep < 1) {
        snprintf(err, errlen, "%s: refusing to prune with keep = %d (must be at least 1)", dir,
                 keep);
        return -1;
    }
    int s = scan(dir, 1, &l, err, errlen);
    if (s != 0) {
        rc = s > 0 ? 0 : -1;
        goto done;
    }
    for (size_t i = (size_t)keep; i < l.n; i++)
        if (unlink(l.v[i].path) != 0 && errno != ENOENT) {
            snprintf(err, errlen, "%s: cannot delete old checkpoint: %s", l.v[i].path,
                     qt_ck_strerror(errno, ebuf, sizeof ebuf));
            goto done;
        }
    rc = 0;
done:
    listing_free(&l);
    return rc;
}
