/* corpus.c — load a text corpus from a file or a directory tree.
 *
 * A directory is walked first (collecting relative paths and sizes, counting links and special
 * files), then its files are read in one global strcmp order of their relative paths: sorting each
 * directory separately would put "a/x" before "a-b", and the byte stream — hence the train/val
 * split — would then depend on how the tree happens to be nested. */
#define _POSIX_C_SOURCE 200809L

#include "data/data.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct file_list {
    char **rel; /* paths relative to the root, malloc'd */
    size_t n, cap;
    size_t total; /* sum of sizes seen by lstat: the initial buffer capacity */
} file_list;

typedef struct text_buf {
    uint8_t *bytes;
    size_t n, cap;
} text_buf;

static void file_list_free(file_list *fl) {
    for (size_t i = 0; i < fl->n; i++)
        free(fl->rel[i]);
    free(fl->rel);
    memset(fl, 0, sizeof *fl);
}

static int file_list_add(file_list *fl, const char *rel, size_t size) {
    if (fl->n == fl->cap) {
        size_t cap = fl->cap ? 2 * fl->cap : 64;
        char **p = realloc(fl->rel, cap * sizeof *p);
        if (!p)
            return -1;
        fl->rel = p;
        fl->cap = cap;
    }
    size_t len = strlen(rel);
    char *copy = malloc(len + 1);
    if (!copy)
        return -1;
    memcpy(copy, rel, len + 1);
    fl->rel[fl->n++] = copy;
    fl->total += size;
    return 0;
}

/* "root/rel" (or "root" when rel is empty), malloc'd; NULL when out of memory. */
static char *join(const char *root, const char *rel) {
    size_t a = strlen(root), b = strlen(rel);
    char *p = malloc(a + 1 + b + 1);
    if (!p)
        return NULL;
    memcpy(p, root, a);
    if (b) {
        p[a] = '/';
        memcpy(p + a + 1, rel, b + 1);
    } else {
        p[a] = '\0';
    }
    return p;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Collect the regular files under root/rel (rel "" for the root itself). */
static int walk(const char *root, const char *rel, file_list *fl, data_corpus *c, char *err,
                size_t errlen) {
    int rc = -1;
    char *dirpath = join(root, rel);
    DIR *d = NULL;
    if (!dirpath) {
        snprintf(err, errlen, "%s: out of memory while listing the corpus", root);
        goto done;
    }
    d = opendir(dirpath);
    if (!d) {
        snprintf(err, errlen, "%s: cannot open directory: %s", dirpath, strerror(errno));
        goto done;
    }
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            if (errno) {
                snprintf(err, errlen, "%s: cannot read directory: %s", dirpath, strerror(errno));
                goto done;
            }
            break;
        }
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *child_rel = *rel ? join(rel, e->d_name) : join(e->d_name, "");
        char *child = child_rel ? join(root, child_rel) : NULL;
        if (!child) {
            free(child_rel);
            snprintf(err, errlen, "%s: out of memory while listing the corpus", dirpath);
            goto done;
        }
        struct stat st;
        int r = 0;
        if (lstat(child, &st) != 0) {
            snprintf(err, errlen, "%s: cannot stat: %s", child, strerror(errno));
            r = -1;
        } else if (S_ISLNK(st.st_mode)) {
            c->n_skipped_links++;
        } else if (S_ISDIR(st.st_mode)) {
            r = walk(root, child_rel, fl, c, err, errlen);
        } else if (S_ISREG(st.st_mode)) {
            if (file_list_add(fl, child_rel, (size_t)st.st_size) != 0) {
                snprintf(err, errlen, "%s: out of memory while listing the corpus", dirpath);
                r = -1;
            }
        } else {
            c->n_skipped_other++; /* reading a FIFO could block forever */
        }
        free(child);
        free(child_rel);
        if (r != 0)
            goto done;
    }
    rc = 0;
done:
    if (d)
        closedir(d);
    free(dirpath);
    return rc;
}

static int reserve(text_buf *tb, size_t extra) {
    if (tb->cap - tb->n >= extra)
        return 0;
    size_t cap = tb->cap ? tb->cap : 4096;
    while (cap - tb->n < extra) {
        if (cap > SIZE_MAX / 2)
            return -1;
        cap *= 2;
    }
    uint8_t *p = realloc(tb->bytes, cap);
    if (!p)
        return -1;
    tb->bytes = p;
    tb->cap = cap;
    return 0;
}

/* Append the file's bytes to tb. Sets *binary (and leaves tb->n unchanged) if it contains a NUL. */
static int read_file(const char *path, text_buf *tb, int *binary, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    size_t start = tb->n;
    for (;;) {
        /* Any free space will do: directories reserve their total size up front, so this only
         * grows the buffer when a file grew after the walk (or for a stream-like file). */
        if (reserve(tb, 1) != 0) {
            snprintf(err, errlen, "%s: out of memory reading the corpus (%zu bytes so far)", path,
                     tb->n);
            fclose(f);
            tb->n = start;
            return -1;
        }
        size_t got = fread(tb->bytes + tb->n, 1, tb->cap - tb->n, f);
        tb->n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
        fclose(f);
        tb->n = start;
        return -1;
    }
    fclose(f);
    *binary = memchr(tb->bytes + start, 0, tb->n - start) != NULL;
    if (*binary)
        tb->n = start;
    return 0;
}

int data_corpus_load(const char *path, data_corpus *c, char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    file_list fl = {0};
    text_buf tb = {0};
    char *full = NULL;
    struct stat st;

    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "data corpus %s: %s", path, strerror(errno));
        goto fail;
    }
    if (S_ISREG(st.st_mode)) {
        int binary = 0;
        if (reserve(&tb, (size_t)st.st_size + 1) != 0) {
            snprintf(err, errlen, "%s: out of memory (%lld bytes)", path, (long long)st.st_size);
            goto fail;
        }
        if (read_file(path, &tb, &binary, err, errlen) != 0)
            goto fail;
        if (binary) {
            snprintf(err, errlen, "data corpus %s: binary file (contains a NUL byte), not text",
                     path);
            goto fail;
        }
        c->n_files = 1;
    } else if (S_ISDIR(st.st_mode)) {
        if (walk(path, "", &fl, c, err, errlen) != 0)
            goto fail;
        if (fl.n > 1) /* qsort's base must not be NULL even for zero elements */
            qsort(fl.rel, fl.n, sizeof *fl.rel, cmp_str);
        if (reserve(&tb, fl.total + 1) != 0) {
            snprintf(err, errlen, "%s: out of memory (%zu bytes)", path, fl.total);
            goto fail;
        }
        for (size_t i = 0; i < fl.n; i++) {
            int binary = 0;
            full = join(path, fl.rel[i]);
            if (!full) {
                snprintf(err, errlen, "%s: out of memory", path);
                goto fail;
            }
            if (read_file(full, &tb, &binary, err, errlen) != 0)
                goto fail;
            if (binary)
                c->n_skipped_binary++;
            else
                c->n_files++;
            free(full);
            full = NULL;
        }
    } else {
        snprintf(err, errlen, "data corpus %s: not a regular file or directory", path);
        goto fail;
    }

    if (tb.n == 0) {
        snprintf(err, errlen,
                 "data corpus %s: no text (%zu files read holding 0 bytes; skipped %zu binary, "
                 "%zu links, %zu other)",
                 path, c->n_files, c->n_skipped_binary, c->n_skipped_links, c->n_skipped_other);
        goto fail;
    }
    /* Give back the read-ahead slack; keeping the larger block is harmless if this fails. */
    uint8_t *shrunk = realloc(tb.bytes, tb.n);
    c->bytes = shrunk ? shrunk : tb.bytes;
    c->n_bytes = tb.n;
    file_list_free(&fl);
    return 0;

fail:
    free(full);
    free(tb.bytes);
    file_list_free(&fl);
    memset(c, 0, sizeof *c);
    return -1;
}

void data_corpus_free(data_corpus *c) {
    if (!c)
        return;
    free(c->bytes);
    memset(c, 0, sizeof *c);
}

void data_corpus_summary(const data_corpus *c, char *out, size_t outlen) {
    double mb = (double)c->n_bytes / 1e6;
    int k = snprintf(out, outlen, "read %zu file%s (%.1f MB), skipped %zu binary, %zu link%s",
                     c->n_files, c->n_files == 1 ? "" : "s", mb, c->n_skipped_binary,
                     c->n_skipped_links, c->n_skipped_links == 1 ? "" : "s");
    if (c->n_skipped_other && k >= 0 && (size_t)k < outlen)
        snprintf(out + k, outlen - (size_t)k, ", %zu other", c->n_skipped_other);
}
