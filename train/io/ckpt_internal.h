/* ckpt_internal.h — private to train/io/ckpt*.c: the pieces the checkpoint writer and reader share.
 *
 * Not a public header: only train/io/ckpt*.c and their tests (tests/train/qttest.c,
 * test_ckpt_damage.c and test_anchor.c, which re-seal damaged files to reach the inner checks)
 * include it. It does not include <hdf5.h>. */
#ifndef QAT_TRAIN_IO_CKPT_INTERNAL_H
#define QAT_TRAIN_IO_CKPT_INTERNAL_H

#include "train/io/ckpt.h"

#include <stddef.h>
#include <stdint.h>

/* ---- checksum (ckpt_hash.c) ----
 * The file checksum is a fold of a 64-bit hash over every dataset in byte order of its full path
 * ("/optim/...", "/params/...", "/rng/..."), then over the root/optim/data attribute values. The
 * exact byte layout is specified in docs/CHECKPOINTS.md so other readers can recompute it. */

/* One dataset as the checksum sees it; data points into caller-owned memory. */
typedef struct qt_ck_item {
    const char *group; /* "params" | "optim" | "rng" */
    const char *name;  /* path below the group */
    int dtype;         /* QT_CK_F32, QT_CK_U8, or QT_CK_CODE_U64 for /rng streams */
    int ndim;
    int64_t shape[4];
    const void *data;
    size_t nbytes;
} qt_ck_item;

#define QT_CK_CODE_U64 2 /* dtype code of /rng datasets; not a tensor dtype */

/* One-shot hash of n bytes, chained through seed. */
uint64_t qt_ck_hash64(const void *p, size_t n, uint64_t seed);
/* Sorts items in place by (group, name) and attrs (pointers to ck's extra attributes, n_attrs of
 * them) by (obj, name) — the canonical orders — and returns the file checksum of items plus the
 * scalar metadata of ck (kind, step, config, model_hash, optim step/lr, data epoch/cursor), then
 * of the extra attributes. attrs may be NULL when n_attrs is 0. */
uint64_t qt_ck_checksum(qt_ck_item *items, size_t n, const qt_ckpt_attr **attrs, size_t n_attrs,
                        const qt_ckpt *ck);
/* qsort comparator over const qt_ckpt_attr * by (obj, name). */
int qt_ck_cmp_attr(const void *a, const void *b);
/* 1 for the attributes every file has on its root (qat_format_version, kind, step, config,
 * model_hash, checksum): they are never extra attributes. */
int qt_ck_is_fixed_root_attr(const char *name);
/* Fills items (capacity n_params + n_optim + n_rngs) from ck; returns the count. */
size_t qt_ck_items_of(const qt_ckpt *ck, qt_ck_item *items);

/* ---- names (ckpt.c) ---- */
/* 0 if name is a usable HDF5 path below a group: non-empty, shorter than maxlen, no leading or
 * trailing '/', no empty, "." or ".." component. Otherwise -1 with the reason in why. */
int qt_ck_check_name(const char *name, size_t maxlen, const char **why);
/* Bytes per element of a dtype (0 if unknown). */
size_t qt_ck_dtype_size(qt_ck_dtype d);
/* numel * element size, or 0 on overflow or invalid shape (ndim outside 1..4, dim < 1). */
size_t qt_ck_nbytes(qt_ck_dtype d, int ndim, const int64_t *shape);
/* strerror_r into buf (thread-safe); returns buf. */
const char *qt_ck_strerror(int errnum, char *buf, size_t buflen);

/* ---- HDF5 error handling (ckpt_h5err.c) ----
 * HDF5 prints its error stack to stderr by default. Every public entry point silences it for its
 * own duration and restores the caller's handler afterwards (the handler is HDF5-global state, so
 * restoring it keeps other users of HDF5 in the process unaffected). */
typedef struct qt_ck_h5quiet {
    void (*func)(void); /* the caller's H5E_auto2_t (header stays free of <hdf5.h>) */
    void *data;
    int saved;
} qt_ck_h5quiet;
void qt_ck_h5_quiet_begin(qt_ck_h5quiet *q);
void qt_ck_h5_quiet_end(const qt_ck_h5quiet *q);
/* Copies the innermost message of the current HDF5 error stack into buf ("" if none). Call it
 * right after the failing HDF5 call: the next API call clears the stack. */
void qt_ck_h5_innermost(char *buf, size_t buflen);
/* snprintf(err, fmt, ...) followed by " (HDF5: <innermost message>)" when there is one. */
void qt_ck_h5_fail(char *err, size_t errlen, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* ---- the raw-bytes header in the HDF5 user block (ckpt_frame.c) ---- */
#define QT_CK_FRAME_SIZE 512
/* Fills file[0, 512) (the user block) for a file of n > 512 bytes whose HDF5 part follows. */
void qt_ck_frame_seal(unsigned char *file, size_t n);
/* Verifies the header and the hash of the whole file before HDF5 sees it. Returns 1 verified,
 * 0 no header (a plain HDF5 file, or not HDF5: the caller decides), -1 damaged (message set). */
int qt_ck_frame_check(const char *path, uint64_t file_size, char *err, size_t errlen);

/* ---- durable file replacement (ckpt_atomic.c) ----
 * Writes n bytes to path+".tmp", fsyncs, renames over path and fsyncs the directory. On failure
 * the .tmp this call created is removed, an existing file at path is untouched, and err names the
 * file and the errno text. */
int qt_ck_write_atomic(const char *path, const void *bytes, size_t n, char *err, size_t errlen);

#endif
