/* ckpt.h — HDF5 checkpoints: layout, atomic writes, verification, rotation.
 *
 * Layout (documented for h5py users in docs/CHECKPOINTS.md):
 *   bytes 0-511  qat header in the HDF5 user block: file length and a hash of all other bytes
 *   /            attrs qat_format_version, kind, step, config, model_hash, checksum
 *   /params/NAME float32 datasets (chunked, Fletcher32), or uint8 (packed anchor parts)
 *   /optim/NAME/m, /optim/NAME/v (tensor names here carry the "/m" "/v" suffix); attrs step, lr
 *   /rng/NAME    uint64[4] per RNG stream
 *   /data        attrs epoch, cursor
 * A file is written whole in memory (HDF5 core driver), then to NAME.tmp, fsync, rename, fsync of
 * the directory: a crash at any moment leaves either the old or the new file under NAME, never a
 * partial one. Readers check the header first (HDF5 1.10 can crash or hang on damaged metadata, so
 * it never sees a file whose bytes changed), then version, kind, every shape, Fletcher32 per chunk
 * and a 64-bit checksum over every dataset's path, shape and bytes plus the scalar metadata and
 * the extra attributes (qt_ckpt_attr: on the root or on objects below /params; anchors use them).
 * Every function here silences HDF5's own error printing for its duration (restoring the caller's
 * handler) and quotes HDF5's innermost error in its message instead. err may be NULL if errlen
 * is 0. */
#ifndef QAT_TRAIN_IO_CKPT_H
#define QAT_TRAIN_IO_CKPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QT_CKPT_VERSION 1
#define QT_CKPT_NAME_MAX 128

typedef enum { QT_CKPT_TRAIN = 0, QT_CKPT_ANCHOR, QT_CKPT_PTQ } qt_ckpt_kind;
typedef enum { QT_CK_F32 = 0, QT_CK_U8 } qt_ck_dtype;

typedef struct qt_ckpt_tensor {
    char name[QT_CKPT_NAME_MAX]; /* "h.0.attn.wq", "h.0.attn.wq/m"; may contain '/' */
    qt_ck_dtype dtype;
    int ndim;
    int64_t shape[4];
    void *data; /* float* or uint8_t*; owned as described by the function that filled it */
} qt_ckpt_tensor;

typedef struct qt_ckpt_rng {
    char name[32]; /* "init", "data", "format", "dropout", "sample" */
    uint64_t s[4];
} qt_ckpt_rng;

/* An attribute beyond the fixed ones, on the root (obj "") or on an object below /params: a
 * tensor, or a group that holds a tensor's parts (obj "h.0.attn.wq" for the anchor datasets
 * /params/h.0.attn.wq/elements and /scales). Values are a string or 1 to QT_CKPT_ATTR_INTS int64
 * (n == 1: an HDF5 scalar, n > 1: a 1-D array). Fixed-size, so arrays of them own nothing. */
#define QT_CKPT_ATTR_NAME_MAX 32
#define QT_CKPT_ATTR_STR_MAX 64
#define QT_CKPT_ATTR_INTS 4
typedef enum { QT_CK_ATTR_STR = 0, QT_CK_ATTR_INT } qt_ck_attr_type;

typedef struct qt_ckpt_attr {
    char obj[QT_CKPT_NAME_MAX];       /* "" = the root; else a path below /params */
    char name[QT_CKPT_ATTR_NAME_MAX]; /* no '/'; on the root not one of the fixed names */
    qt_ck_attr_type type;
    char str[QT_CKPT_ATTR_STR_MAX]; /* QT_CK_ATTR_STR */
    int n;                          /* QT_CK_ATTR_INT: number of values, 1..QT_CKPT_ATTR_INTS */
    int64_t ints[QT_CKPT_ATTR_INTS];
} qt_ckpt_attr;

typedef struct qt_ckpt {
    qt_ckpt_kind kind;
    int64_t step;
    const char *config_text; /* the resolved INI */
    uint64_t model_hash;
    qt_ckpt_tensor *params;
    size_t n_params;
    qt_ckpt_tensor *optim;
    size_t n_optim;
    int64_t optim_step;
    double optim_lr;
    qt_ckpt_rng *rngs;
    size_t n_rngs;
    int64_t data_epoch, data_cursor;
    qt_ckpt_attr *attrs; /* extra attributes (see qt_ckpt_attr) */
    size_t n_attrs;
} qt_ckpt;

const char *qt_ckpt_kind_name(qt_ckpt_kind k); /* "train" | "anchor" | "ptq" */

/* Write atomically to path (see above). Tensor data is only read; config_text NULL is written as
 * "". Tensors need a name that is a clean HDF5 path (no leading, trailing or doubled '/', no "."
 * or ".." component, shorter than QT_CKPT_NAME_MAX), unique within params/optim, 1 to 4 dims, each
 * >= 1; RNG names contain no '/'. Extra attributes need a unique (obj, name), a valid name, a
 * string shorter than QT_CKPT_ATTR_STR_MAX or 1..QT_CKPT_ATTR_INTS values, and an obj that is ""
 * or a tensor of params or a group of them (a proper prefix "obj/" of a tensor name). /optim,
 * /rng and /data are always written (maybe empty). Any failure (including ENOSPC) returns -1
 * with a message naming the path and cause, leaves no NAME.tmp behind and leaves an existing file
 * at path untouched. One exception: if only the final fsync of the directory fails, -1 is
 * returned although the new file is already in place. */
int qt_ckpt_write(const char *path, const qt_ckpt *ck, char *err, size_t errlen);

/* Read and verify a whole checkpoint. On success every string and tensor buffer in *ck is
 * malloc'd and owned by ck: release with qt_ckpt_free. params, optim and rngs come back sorted
 * bytewise by name, attrs by (obj, name). /params is required; /optim, /rng and /data are
 * required for kind "train" and optional (counts 0) otherwise. Every attribute of the root beyond
 * the fixed ones and every attribute of an object below /params is returned in attrs (and covered
 * by the checksum); one that is not a string or 1..4 integers is an error. Attributes of /optim
 * and /data other than theirs are ignored. On failure returns -1, *ck is empty, and err names the
 * file and what is wrong (missing/truncated file, not HDF5, bad version, checksum mismatch in
 * /params/X, ...). */
int qt_ckpt_read(const char *path, qt_ckpt *ck, char *err, size_t errlen);
void qt_ckpt_free(qt_ckpt *ck); /* frees what qt_ckpt_read allocated; leaves ck zeroed */

/* Look up a tensor by name in an array (NULL if absent). */
const qt_ckpt_tensor *qt_ckpt_find(const qt_ckpt_tensor *arr, size_t n, const char *name);
/* Look up an extra attribute by object ("" = root) and name (NULL if absent). */
const qt_ckpt_attr *qt_ckpt_find_attr(const qt_ckpt *ck, const char *obj, const char *name);
/* Fill *a as a string attribute (s cut at QT_CKPT_ATTR_STR_MAX - 1 bytes) or an integer one
 * (n values; at most QT_CKPT_ATTR_INTS are copied, and qt_ckpt_write refuses a count outside
 * 1..QT_CKPT_ATTR_INTS). obj and name are cut at their field sizes. */
void qt_ckpt_attr_str(qt_ckpt_attr *a, const char *obj, const char *name, const char *s);
void qt_ckpt_attr_ints(qt_ckpt_attr *a, const char *obj, const char *name, const int64_t *v, int n);

/* dir/step_NNNNNNN.h5 (7 digits, zero-padded). */
void qt_ckpt_path(char *out, size_t outlen, const char *dir, int64_t step);
/* Newest checkpoint in dir (by step number, not name) that reads and verifies (a full
 * qt_ckpt_read); older ones are tried when a newer one is damaged (each skipped one is reported
 * through warn, if non-NULL, with the reason). Returns 1 found (path in out), 0 none (also when
 * dir does not exist), -1 error (message in err). */
int qt_ckpt_find_latest(const char *dir, char *out, size_t outlen,
                        void (*warn)(const char *msg, void *user), void *user, char *err,
                        size_t errlen);
/* Delete all but the newest `keep` (>= 1) step_<digits>.h5 files in dir, and any stale
 * step_*.tmp. Other files and directories are never touched. A missing dir is not an error. */
int qt_ckpt_prune(const char *dir, int keep, char *err, size_t errlen);

#endif
