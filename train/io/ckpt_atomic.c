/* ckpt_atomic.c — replace a file durably and atomically with bytes held in memory.
 *
 * The sequence is the one redis uses for its dumps: write PATH.tmp, fsync it, rename it over PATH,
 * fsync the directory so the rename itself survives a power cut. A crash at any point leaves
 * either the old PATH or the new one, never a mix; a failure before the rename removes PATH.tmp.
 * HDF5 is not involved: its own writes do not fsync and a failed write (disk full) can crash
 * HDF5 1.10 at exit, so the bytes come from an in-memory image and are written here. */
#define _POSIX_C_SOURCE 200809L

#include "train/io/ckpt_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Loops over short writes and EINTR. Returns 0, or -1 with errno set and *done bytes written. */
static int write_all(int fd, const unsigned char *p, size_t n, size_t *done) {
    *done = 0;
    while (*done < n) {
        size_t chunk = n - *done;
        if (chunk > ((size_t)1 << 30)) /* Linux moves at most ~2 GiB per call anyway */
            chunk = (size_t)1 << 30;
        ssize_t w = write(fd, p + *done, chunk);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (w == 0) { /* no progress and no error: treat as a full device rather than spin */
            errno = ENOSPC;
            return -1;
        }
        *done += (size_t)w;
    }
    return 0;
}

/* The directory holding path: "." for a bare name, "/" for "/name". Caller frees. */
static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    size_t n = !slash ? 1 : slash == path ? 1 : (size_t)(slash - path);
    char *d = malloc(n + 1);
    if (!d)
        return NULL;
    memcpy(d, slash ? path : ".", n);
    d[n] = 0;
    return d;
}

static int fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    /* Some file systems cannot fsync a directory (EINVAL); there is nothing more to do there. */
    if (rc != 0 && saved == EINVAL)
        rc = 0;
    errno = saved;
    return rc;
}

int qt_ck_write_atomic(const char *path, const void *bytes, size_t n, char *err, size_t errlen) {
    char ebuf[128];
    int fd = -1, created = 0;
    size_t plen = strlen(path), done = 0;
    char *tmp = malloc(plen + 5), *dir = NULL;
    if (!tmp) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);

    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot create %s: %s", path, tmp,
                 qt_ck_strerror(errno, ebuf, sizeof ebuf));
        goto fail;
    }
    created = 1;
    if (write_all(fd, bytes, n, &done) != 0) {
        snprintf(err, errlen, "%s: writing %s failed after %zu of %zu bytes: %s", path, tmp, done,
                 n, qt_ck_strerror(errno, ebuf, sizeof ebuf));
        goto fail;
    }
    if (fsync(fd) != 0) {
        snprintf(err, errlen, "%s: fsync of %s failed: %s", path, tmp,
                 qt_ck_strerror(errno, ebuf, sizeof ebuf));
        goto fail;
    }
    int rc = close(fd);
    fd = -1;
    if (rc != 0) { /* NFS and friends report deferred write errors only here */
        snprintf(err, errlen, "%s: closing %s failed: %s", path, tmp,
                 qt_ck_strerror(errno, ebuf, sizeof ebuf));
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        snprintf(err, errlen, "%s: cannot rename %s over it: %s", path, tmp,
                 qt_ck_strerror(errno, ebuf, sizeof ebuf));
        goto fail;
    }
    created = 0; /* the tmp name is gone; PATH now holds the new, complete file */
    dir = dir_of(path);
    if (!dir || fsync_dir(dir) != 0) {
        /* The new file is complete and in place, but the rename may not survive a power cut. */
        snprintf(err, errlen, "%s: written, but fsync of its directory %s failed: %s", path,
                 dir ? dir : "?", dir ? qt_ck_strerror(errno, ebuf, sizeof ebuf) : "out of memory");
        goto fail;
    }
    free(dir);
    free(tmp);
    return 0;

fail:
    free(dir);
    if (fd >= 0)
        close(fd);
    if (created)
        unlink(tmp);
    free(tmp);
    return -1;
}
