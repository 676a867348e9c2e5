/* ckpt_write.c — qt_ckpt_write: build the whole HDF5 file in memory, then hand the bytes to
 * qt_ck_write_atomic.
 *
 * The core driver without a backing store keeps the file in RAM, so HDF5 never touches the disk
 * (its writes do not fsync, and a failing write can crash 1.10 at exit). The image costs about
 * twice the payload in memory while it is copied out; that is the price of one durable write.
 * Default (earliest) format bounds keep the files readable by every h5py/HDF5 1.8+ reader. */
#define _POSIX_C_SOURCE 200809L /* strnlen */
#include "train/io/ckpt_internal.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_TARGET ((size_t)1 << 20) /* ~1 MiB chunks: one Fletcher32 sum per MiB */

/* Chunks span whole rows (every dim but the first) and as many rows as fit the target. */
static void chunk_dims(int ndim, const hsize_t *dims, size_t esize, hsize_t *chunk) {
    size_t row = esize;
    for (int d = 1; d < ndim; d++) {
        chunk[d] = dims[d];
        row *= (size_t)dims[d];
    }
    hsize_t rows = (hsize_t)(CHUNK_TARGET / row);
    chunk[0] = rows < 1 ? 1 : rows > dims[0] ? dims[0] : rows;
}

static int put_attr(hid_t obj, const char *where, const char *name, hid_t ftype, hid_t mtype,
                    const void *val, const char *path, char *err, size_t errlen) {
    int rc = -1;
    hid_t sp = -1, a = -1;
    if ((sp = H5Screate(H5S_SCALAR)) < 0 ||
        (a = H5Acreate2(obj, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        H5Awrite(a, mtype, val) < 0) {
        qt_ck_h5_fail(err, errlen, "%s: cannot write attribute '%s' of %s", path, name, where);
        goto done;
    }
    rc = 0;
done:
    if (a >= 0)
        H5Aclose(a);
    if (sp >= 0)
        H5Sclose(sp);
    return rc;
}

/* Variable-length UTF-8: no 64 KiB attribute limit for long configs, and h5py returns a str. */
static int put_str_attr(hid_t obj, const char *where, const char *name, const char *s,
                        const char *path, char *err, size_t errlen) {
    int rc = -1;
    hid_t st = H5Tcopy(H5T_C_S1);
    if (st < 0 || H5Tset_size(st, H5T_VARIABLE) < 0 || H5Tset_cset(st, H5T_CSET_UTF8) < 0) {
        qt_ck_h5_fail(err, errlen, "%s: cannot make a string type", path);
        goto done;
    }
    rc = put_attr(obj, where, name, st, st, &s, path, err, errlen);
done:
    if (st >= 0)
        H5Tclose(st);
    return rc;
}

/* An extra attribute (qt_ckpt_attr) on the root or on an object below /params. */
static int put_extra_attr(hid_t fid, hid_t params, const qt_ckpt_attr *a, const char *path,
                          char *err, size_t errlen) {
    char where[QT_CKPT_NAME_MAX + 16];
    snprintf(where, sizeof where, "/%s%s", a->obj[0] ? "params/" : "", a->obj);
    int rc = -1;
    hid_t obj = a->obj[0] ? H5Oopen(params, a->obj, H5P_DEFAULT) : fid, sp = -1;
    if (obj < 0) {
        qt_ck_h5_fail(err, errlen, "%s: cannot open %s for attribute '%s'", path, where, a->name);
        goto done;
    }
    if (a->type == QT_CK_ATTR_STR) {
        rc = put_str_attr(obj, where, a->name, a->str, path, err, errlen);
        goto done;
    }
    hsize_t n = (hsize_t)a->n;
    hid_t at = -1;
    if ((sp = a->n == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, NULL)) < 0 ||
        (at = H5Acreate2(obj, a->name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        H5Awrite(at, H5T_NATIVE_INT64, a->ints) < 0) {
        qt_ck_h5_fail(err, errlen, "%s: cannot write attribute '%s' of %s", path, a->name, where);
        if (at >= 0)
            H5Aclose(at);
        goto done;
    }
    H5Aclose(at);
    rc = 0;
done:
    if (sp >= 0)
        H5Sclose(sp);
    if (obj >= 0 && obj != fid)
        H5Oclose(obj);
    return rc;
}

static int put_dataset(hid_t grp, hid_t lcpl, const qt_ck_item *it, const char *path, char *err,
                       size_t errlen) {
    /* File types are fixed little-endian; HDF5 converts from the native memory types. */
    hid_t ftype = H5T_STD_U64LE, mtype = H5T_NATIVE_UINT64;
    size_t esize = 8;
    if (it->dtype == QT_CK_F32)
        ftype = H5T_IEEE_F32LE, mtype = H5T_NATIVE_FLOAT, esize = 4;
    else if (it->dtype == QT_CK_U8)
        ftype = H5T_STD_U8LE, mtype = H5T_NATIVE_UINT8, esize = 1;
    hsize_t dims[4], chunk[4];
    for (int d = 0; d < it->ndim; d++)
        dims[d] = (hsize_t)it->shape[d];
    chunk_dims(it->ndim, dims, esize, chunk);

    int rc = -1;
    hid_t sp = -1, dcpl = -1, ds = -1;
    if ((sp = H5Screate_simple(it->ndim, dims, NULL)) < 0 ||
        (dcpl = H5Pcreate(H5P_DATASET_CREATE)) < 0 || H5Pset_chunk(dcpl, it->ndim, chunk) < 0 ||
        H5Pset_fletcher32(dcpl) < 0 ||
        (ds = H5Dcreate2(grp, it->name, ftype, sp, lcpl, dcpl, H5P_DEFAULT)) < 0 ||
        H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, it->data) < 0) {
        qt_ck_h5_fail(err, errlen, "%s: cannot write dataset /%s/%s", path, it->group, it->name);
        goto done;
    }
    rc = 0;
done:
    if (ds >= 0)
        H5Dclose(ds);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (sp >= 0)
        H5Sclose(sp);
    return rc;
}

static int check_tensor(const char *group, const qt_ckpt_tensor *t, const char *path, char *err,
                        size_t errlen) {
    const char *why = NULL;
    if (qt_ck_check_name(t->name, QT_CKPT_NAME_MAX, &why) != 0) {
        snprintf(err, errlen, "%s: bad tensor name '%.*s' in /%s: %s", path, QT_CKPT_NAME_MAX - 1,
                 t->name, group, why);
        return -1;
    }
    if (t->ndim < 1 || t->ndim > 4) {
        snprintf(err, errlen, "%s: /%s/%s has ndim %d, expected 1..4", path, group, t->name,
                 t->ndim);
        return -1;
    }
    if (qt_ck_dtype_size(t->dtype) == 0 || qt_ck_nbytes(t->dtype, t->ndim, t->shape) == 0) {
        snprintf(err, errlen, "%s: /%s/%s has an unknown dtype or a dimension < 1", path, group,
                 t->name);
        return -1;
    }
    if (!t->data) {
        snprintf(err, errlen, "%s: /%s/%s has no data", path, group, t->name);
        return -1;
    }
    return 0;
}

/* obj names a tensor of params, or a group of them (a proper prefix "obj/" of a tensor name). */
static int attr_obj_exists(const qt_ckpt *ck, const char *obj) {
    size_t n = strlen(obj);
    for (size_t i = 0; i < ck->n_params; i++) {
        const char *t = ck->params[i].name;
        if (strncmp(t, obj, n) == 0 && (t[n] == '\0' || t[n] == '/'))
            return 1;
    }
    return 0;
}

/* Why attribute a cannot be written, or NULL when it can. */
static const char *attr_problem(const qt_ckpt *ck, const qt_ckpt_attr *a) {
    const char *why = NULL;
    size_t ol = strnlen(a->obj, sizeof a->obj), nl = strnlen(a->name, sizeof a->name);
    if (ol == sizeof a->obj || nl == sizeof a->name)
        return "name or object not NUL-terminated";
    if (ol && qt_ck_check_name(a->obj, sizeof a->obj, &why) != 0)
        return why;
    if (ol && !attr_obj_exists(ck, a->obj))
        return "no tensor of /params is or is below that object";
    if (nl == 0 || strchr(a->name, '/'))
        return "empty name or a name with '/'";
    if (!ol && qt_ck_is_fixed_root_attr(a->name))
        return "a fixed root attribute cannot be an extra one";
    if (a->type == QT_CK_ATTR_STR)
        return strnlen(a->str, sizeof a->str) == sizeof a->str ? "string not NUL-terminated" : NULL;
    if (a->type == QT_CK_ATTR_INT)
        return a->n < 1 || a->n > QT_CKPT_ATTR_INTS ? "integer count outside 1..4" : NULL;
    return "unknown attribute type";
}

static int check_attr(const qt_ckpt *ck, const qt_ckpt_attr *a, const char *path, char *err,
                      size_t errlen) {
    const char *why = attr_problem(ck, a);
    if (!why)
        return 0;
    snprintf(err, errlen, "%s: bad attribute '%.31s' of /%s%.127s: %s", path, a->name,
             a->obj[0] ? "params/" : "", a->obj, why);
    return -1;
}

static int check_input(const qt_ckpt *ck, const char *path, char *err, size_t errlen) {
    if ((int)ck->kind < QT_CKPT_TRAIN || (int)ck->kind > QT_CKPT_PTQ) {
        snprintf(err, errlen, "%s: unknown checkpoint kind %d", path, (int)ck->kind);
        return -1;
    }
    if (ck->n_attrs && !ck->attrs) {
        snprintf(err, errlen, "%s: %zu attributes but no array", path, ck->n_attrs);
        return -1;
    }
    for (size_t i = 0; i < ck->n_attrs; i++)
        if (check_attr(ck, &ck->attrs[i], path, err, errlen) != 0)
            return -1;
    for (size_t i = 0; i < ck->n_params; i++)
        if (check_tensor("params", &ck->params[i], path, err, errlen) != 0)
            return -1;
    for (size_t i = 0; i < ck->n_optim; i++)
        if (check_tensor("optim", &ck->optim[i], path, err, errlen) != 0)
            return -1;
    for (size_t i = 0; i < ck->n_rngs; i++) {
        const char *why = NULL, *name = ck->rngs[i].name;
        if (qt_ck_check_name(name, sizeof ck->rngs[i].name, &why) != 0 || strchr(name, '/')) {
            snprintf(err, errlen, "%s: bad RNG stream name '%.31s': %s", path, name,
                     why ? why : "contains '/'");
            return -1;
        }
    }
    return 0;
}

/* After sorting, equal neighbours are duplicates HDF5 would reject with a vaguer message. */
static int check_unique(const qt_ck_item *items, size_t n, const char *path, char *err,
                        size_t errlen) {
    for (size_t i = 1; i < n; i++)
        if (strcmp(items[i].group, items[i - 1].group) == 0 &&
            strcmp(items[i].name, items[i - 1].name) == 0) {
            snprintf(err, errlen, "%s: duplicate tensor /%s/%s", path, items[i].group,
                     items[i].name);
            return -1;
        }
    return 0;
}

static int check_unique_attrs(const qt_ckpt_attr **a, size_t n, const char *path, char *err,
                              size_t errlen) {
    for (size_t i = 1; i < n; i++)
        if (qt_ck_cmp_attr(&a[i], &a[i - 1]) == 0) {
            snprintf(err, errlen, "%s: duplicate attribute '%s' of /%s%s", path, a[i]->name,
                     a[i]->obj[0] ? "params/" : "", a[i]->obj);
            return -1;
        }
    return 0;
}

static hid_t make_group(hid_t fid, const char *name, const char *path, char *err, size_t errlen) {
    hid_t g = H5Gcreate2(fid, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0)
        qt_ck_h5_fail(err, errlen, "%s: cannot create group /%s", path, name);
    return g;
}

int qt_ckpt_write(const char *path, const qt_ckpt *ck, char *err, size_t errlen) {
    char scratch[1];
    if (!err || !errlen) /* messages are optional */
        err = scratch, errlen = sizeof scratch;
    qt_ck_h5quiet quiet;
    qt_ck_h5_quiet_begin(&quiet);
    int rc = -1;
    hid_t fapl = -1, fcpl = -1, fid = -1, lcpl = -1, g[4] = {-1, -1, -1, -1};
    unsigned char *image = NULL;
    size_t n_items = ck->n_params + ck->n_optim + ck->n_rngs;
    qt_ck_item *items = malloc((n_items ? n_items : 1) * sizeof *items);
    const qt_ckpt_attr **attrs = malloc((ck->n_attrs ? ck->n_attrs : 1) * sizeof *attrs);
    if (!items || !attrs) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto done;
    }
    if (check_input(ck, path, err, errlen) != 0)
        goto done;
    n_items = qt_ck_items_of(ck, items);
    for (size_t i = 0; i < ck->n_attrs; i++)
        attrs[i] = &ck->attrs[i];
    /* Also sorts items by path and attrs by (object, name). */
    uint64_t checksum = qt_ck_checksum(items, n_items, attrs, ck->n_attrs, ck);
    if (check_unique(items, n_items, path, err, errlen) != 0 ||
        check_unique_attrs(attrs, ck->n_attrs, path, err, errlen) != 0)
        goto done;

    /* Grow the in-memory file in one step where possible: payload plus ~8 KiB per object. */
    const char *config = ck->config_text ? ck->config_text : "";
    size_t estimate = ((size_t)1 << 20) + strlen(config) + 8192 * n_items;
    for (size_t i = 0; i < n_items; i++)
        estimate += items[i].nbytes;
    estimate += 512 * ck->n_attrs;
    /* The user block is where ckpt_frame.c puts the raw-bytes checksum. */
    if ((fapl = H5Pcreate(H5P_FILE_ACCESS)) < 0 || H5Pset_fapl_core(fapl, estimate, 0) < 0 ||
        (fcpl = H5Pcreate(H5P_FILE_CREATE)) < 0 || H5Pset_userblock(fcpl, QT_CK_FRAME_SIZE) < 0 ||
        (fid = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, fapl)) < 0) {
        qt_ck_h5_fail(err, errlen, "%s: cannot create the in-memory HDF5 file", path);
        goto done;
    }
    if ((lcpl = H5Pcreate(H5P_LINK_CREATE)) < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0) {
        qt_ck_h5_fail(err, errlen, "%s: cannot make a link property list", path);
        goto done;
    }

    int version = QT_CKPT_VERSION;
    if (put_attr(fid, "/", "qat_format_version", H5T_STD_I32LE, H5T_NATIVE_INT, &version, path, err,
                 errlen) != 0 ||
        put_str_attr(fid, "/", "kind", qt_ckpt_kind_name(ck->kind), path, err, errlen) != 0 ||
        put_attr(fid, "/", "step", H5T_STD_I64LE, H5T_NATIVE_INT64, &ck->step, path, err, errlen) !=
            0 ||
        put_str_attr(fid, "/", "config", config, path, err, errlen) != 0 ||
        put_attr(fid, "/", "model_hash", H5T_STD_U64LE, H5T_NATIVE_UINT64, &ck->model_hash, path,
                 err, errlen) != 0 ||
        put_attr(fid, "/", "checksum", H5T_STD_U64LE, H5T_NATIVE_UINT64, &checksum, path, err,
                 errlen) != 0)
        goto done;

    static const char *const groups[4] = {"params", "optim", "rng", "data"};
    for (int i = 0; i < 4; i++)
        if ((g[i] = make_group(fid, groups[i], path, err, errlen)) < 0)
            goto done;
    if (put_attr(g[1], "/optim", "step", H5T_STD_I64LE, H5T_NATIVE_INT64, &ck->optim_step, path,
                 err, errlen) != 0 ||
        put_attr(g[1], "/optim", "lr", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &ck->optim_lr, path, err,
                 errlen) != 0 ||
        put_attr(g[3], "/data", "epoch", H5T_STD_I64LE, H5T_NATIVE_INT64, &ck->data_epoch, path,
                 err, errlen) != 0 ||
        put_attr(g[3], "/data", "cursor", H5T_STD_I64LE, H5T_NATIVE_INT64, &ck->data_cursor, path,
                 err, errlen) != 0)
        goto done;

    for (size_t i = 0; i < n_items; i++) {
        hid_t grp = items[i].group[0] == 'p' ? g[0] : items[i].group[0] == 'o' ? g[1] : g[2];
        if (put_dataset(grp, lcpl, &items[i], path, err, errlen) != 0)
            goto done;
    }
    for (size_t i = 0; i < ck->n_attrs; i++)
        if (put_extra_attr(fid, g[0], attrs[i], path, err, errlen) != 0)
            goto done;
    for (int i = 3; i >= 0; i--) {
        H5Gclose(g[i]);
        g[i] = -1;
    }

    /* The image starts after the user block (HDF5 leaves that space to us): the header goes in
     * front of it in the same buffer. */
    ssize_t size = -1;
    if (H5Fflush(fid, H5F_SCOPE_GLOBAL) < 0 || (size = H5Fget_file_image(fid, NULL, 0)) <= 0 ||
        !(image = malloc(QT_CK_FRAME_SIZE + (size_t)size)) ||
        H5Fget_file_image(fid, image + QT_CK_FRAME_SIZE, (size_t)size) != size) {
        qt_ck_h5_fail(err, errlen, "%s: cannot take the in-memory file image (%zd bytes)", path,
                      size);
        goto done;
    }
    /* Release HDF5's copy before the (slow) disk write. */
    H5Fclose(fid);
    fid = -1;
    size_t total = QT_CK_FRAME_SIZE + (size_t)size;
    qt_ck_frame_seal(image, total);
    rc = qt_ck_write_atomic(path, image, total, err, errlen);

done:
    free(image);
    for (int i = 3; i >= 0; i--)
        if (g[i] >= 0)
            H5Gclose(g[i]);
    if (lcpl >= 0)
        H5Pclose(lcpl);
    if (fid >= 0)
        H5Fclose(fid);
    if (fcpl >= 0)
        H5Pclose(fcpl);
    if (fapl >= 0)
        H5Pclose(fapl);
    free(attrs);
    free(items);
    qt_ck_h5_quiet_end(&quiet);
    return rc;
}
