/* ckpt_read.c — qt_ckpt_read: open, verify and load a whole checkpoint.
 *
 * Order of checks, each with its own message: the file exists and is a regular file; its header
 * (ckpt_frame.c) matches its length and the hash of every byte, before HDF5 parses anything; it
 * carries the HDF5 signature; HDF5 can open it (for a file without our header, truncation shows
 * here: the superblock records the full length); qat_format_version; kind; the groups the kind
 * needs; every dataset's type and shape (bounded by the file size before anything is allocated);
 * every chunk's Fletcher32 sum while reading; and last the whole-file checksum over everything
 * loaded. */
#define _POSIX_C_SOURCE 200809L

#include "train/io/ckpt_internal.h"

#include <errno.h>
#include <hdf5.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct ctx {
    const char *path;
    uint64_t file_size;
    char *err;
    size_t errlen;
} ctx;

/* ---- attributes ---- */

/* Opens attribute name of obj after checking it exists and holds one value of class cls.
 * Returns the attribute id, or -1 with the message set. */
static hid_t open_attr(const ctx *c, hid_t obj, const char *where, const char *name,
                       H5T_class_t cls) {
    hid_t a = -1, t = -1, sp = -1;
    htri_t ex = H5Aexists(obj, name);
    if (ex < 0) {
        qt_ck_h5_fail(c->err, c->errlen, "%s: cannot look up attribute '%s' of %s", c->path, name,
                      where);
        return -1;
    }
    if (ex == 0) {
        snprintf(c->err, c->errlen, "%s: missing attribute '%s' of %s (not a qat checkpoint?)",
                 c->path, name, where);
        return -1;
    }
    if ((a = H5Aopen(obj, name, H5P_DEFAULT)) < 0 || (t = H5Aget_type(a)) < 0 ||
        (sp = H5Aget_space(a)) < 0) {
        qt_ck_h5_fail(c->err, c->errlen, "%s: cannot open attribute '%s' of %s", c->path, name,
                      where);
        goto fail;
    }
    if (H5Tget_class(t) != cls || H5Sget_simple_extent_npoints(sp) != 1) {
        snprintf(c->err, c->errlen, "%s: attribute '%s' of %s is not a single %s", c->path, name,
                 where,
                 cls == H5T_STRING  ? "string"
                 : cls == H5T_FLOAT ? "float"
                                    : "integer");
        goto fail;
    }
    H5Sclose(sp);
    H5Tclose(t);
    return a;
fail:
    if (sp >= 0)
        H5Sclose(sp);
    if (t >= 0)
        H5Tclose(t);
    if (a >= 0)
        H5Aclose(a);
    return -1;
}

/* Reads a numeric attribute converted to mtype (a native 64-bit type, so nothing is clipped). */
static int get_num(const ctx *c, hid_t obj, const char *where, const char *name, H5T_class_t cls,
                   hid_t mtype, void *out) {
    hid_t a = open_attr(c, obj, where, name, cls);
    if (a < 0)
        return -1;
    int rc = 0;
    if (H5Aread(a, mtype, out) < 0) {
        qt_ck_h5_fail(c->err, c->errlen, "%s: cannot read attribute '%s' of %s", c->path, name,
                      where);
        rc = -1;
    }
    H5Aclose(a);
    return rc;
}

/* Reads a string attribute (variable or fixed length) into a malloc'd copy at *out. */
static int get_str(const ctx *c, hid_t obj, const char *where, const char *name, char **out) {
    int rc = -1;
    hid_t t = -1, mt = -1, a = open_attr(c, obj, where, name, H5T_STRING);
    char *vl = NULL, *s = NULL;
    if (a < 0)
        return -1;
    if ((t = H5Aget_type(a)) < 0 || (mt = H5Tcopy(t)) < 0)
        goto h5fail;
    htri_t var = H5Tis_variable_str(t);
    if (var < 0)
        goto h5fail;
    if (var) {
        /* HDF5 allocates the string; it must be released with H5free_memory. */
        if (H5Aread(a, mt, &vl) < 0)
            goto h5fail;
        size_t n = vl ? strlen(vl) : 0;
        if (!(s = malloc(n + 1)))
            goto oom;
        memcpy(s, vl ? vl : "", n + 1);
    } else {
        size_t n = H5Tget_size(t);
        if (n == 0 || !(s = calloc(1, n + 1)))
            goto oom;
        if (H5Aread(a, mt, s) < 0)
            goto h5fail;
    }
    *out = s;
    s = NULL;
    rc = 0;
    goto done;
h5fail:
    qt_ck_h5_fail(c->err, c->errlen, "%s: cannot read attribute '%s' of %s", c->path, name, where);
    goto done;
oom:
    snprintf(c->err, c->errlen, "%s: out of memory reading attribute '%s' of %s", c->path, name,
             where);
done:
    free(s);
    if (vl)
        H5free_memory(vl);
    if (mt >= 0)
        H5Tclose(mt);
    if (t >= 0)
        H5Tclose(t);
    H5Aclose(a);
    return rc;
}

/* ---- extra attributes (qt_ckpt_attr) ---- */

typedef struct attr_list {
    qt_ckpt_attr *v;
    size_t n, cap;
} attr_list;

/* Reads attribute `name` of loc (object obj: "" root, else a path below /params) into a fresh
 * entry of list: a string, or 1 to QT_CKPT_ATTR_INTS integers as int64. */
static int read_extra_attr(const ctx *c, hid_t loc, const char *obj, const char *name,
                           attr_list *list) {
    char where[QT_CKPT_NAME_MAX + 16];
    snprintf(where, sizeof where, "/%s%s", obj[0] ? "params/" : "", obj);
    if (strlen(name) >= QT_CKPT_ATTR_NAME_MAX || strchr(name, '/')) {
        snprintf(c->err, c->errlen,
                 "%s: attribute '%.60s' of %s: name longer than %d bytes or "
                 "containing '/'",
                 c->path, name, where, QT_CKPT_ATTR_NAME_MAX - 1);
        return -1;
    }
    if (list->n == list->cap) {
        size_t cap = list->cap ? 2 * list->cap : 16;
        qt_ckpt_attr *v = realloc(list->v, cap * sizeof *v);
        if (!v) {
            snprintf(c->err, c->errlen, "%s: out of memory reading attributes of %s", c->path,
                     where);
            return -1;
        }
        list->v = v;
        list->cap = cap;
    }
    qt_ckpt_attr *a = &list->v[list->n];
    memset(a, 0, sizeof *a);
    snprintf(a->obj, sizeof a->obj, "%s", obj);
    snprintf(a->name, sizeof a->name, "%s", name);
    int rc = -1;
    hid_t at = -1, t = -1, sp = -1;
    char *str = NULL;
    if ((at = H5Aopen(loc, name, H5P_DEFAULT)) < 0 || (t = H5Aget_type(at)) < 0 ||
        (sp = H5Aget_space(at)) < 0) {
        qt_ck_h5_fail(c->err, c->errlen, "%s: cannot open attribute '%s' of %s", c->path, name,
                      where);
        goto done;
    }
    H5T_class_t cls = H5Tget_class(t);
    int rank = H5Sget_simple_extent_ndims(sp);
    hssize_t np = H5Sget_simple_extent_npoints(sp);
    if (cls == H5T_STRING) {
        if (get_str(c, loc, where, name, &str) != 0)
            goto done;
        if (strlen(str) >= QT_CKPT_ATTR_STR_MAX) {
            snprintf(c->err, c->errlen, "%s: attribute '%s' of %s is longer than %d bytes", c->path,
                     name, where, QT_CKPT_ATTR_STR_MAX - 1);
            goto done;
        }
        a->type = QT_CK_ATTR_STR;
        strcpy(a->str, str);
    } else if (cls == H5T_INTEGER && rank <= 1 && np >= 1 && np <= QT_CKPT_ATTR_INTS) {
        a->type = QT_CK_ATTR_INT;
        a->n = (int)np;
        if (H5Aread(at, H5T_NATIVE_INT64, a->ints) < 0) {
            qt_ck_h5_fail(c->err, c->errlen, "%s: cannot read attribute '%s' of %s", c->path, name,
                          where);
            goto done;
        }
    } else {
        snprintf(c->err, c->errlen,
                 "%s: attribute '%s' of %s has an unsupported type (expected a string or 1 to "
                 "%d integers)",
                 c->path, name, where, QT_CKPT_ATTR_INTS);
        goto done;
    }
    list->n++;
    rc = 0;
done:
    free(str);
    if (sp >= 0)
        H5Sclose(sp);
    if (t >= 0)
        H5Tclose(t);
    if (at >= 0)
        H5Aclose(at);
    return rc;
}

typedef struct attr_walk {
    const ctx *c;
    const char *obj;
    attr_list *list;
    int failed; /* read_extra_attr failed and wrote the message */
} attr_walk;

static herr_t visit_attr(hid_t loc, const char *name, const H5A_info_t *info, void *user) {
    (void)info;
    attr_walk *w = user;
    if (!w->obj[0] && qt_ck_is_fixed_root_attr(name))
        return 0;
    if (read_extra_attr(w->c, loc, w->obj, name, w->list) != 0) {
        w->failed = 1;
        return -1;
    }
    return 0;
}

/* Every attribute of obj (the root's fixed ones excepted) into list. */
static int read_extra_attrs(const ctx *c, hid_t loc, const char *obj, attr_list *list) {
    attr_walk w = {c, obj, list, 0};
    hsize_t idx = 0;
    if (H5Aiterate2(loc, H5_INDEX_NAME, H5_ITER_INC, &idx, visit_attr, &w) < 0) {
        if (!w.failed)
            qt_ck_h5_fail(c->err, c->errlen, "%s: cannot list the attributes of /%s%s", c->path,
                          obj[0] ? "params/" : "", obj);
        return -1;
    }
    return 0;
}

static int cmp_attr_values(const void *a, const void *b) {
    const qt_ckpt_attr *x = a, *y = b;
    return qt_ck_cmp_attr(&x, &y);
}

/* ---- groups and datasets ---- */

/* 1 if obj/name exists and is a group, 0 if absent, -1 (message set) if it is something else. */
static int has_group(const ctx *c, hid_t fid, const char *name) {
    htri_t ex = H5Lexists(fid, name, H5P_DEFAULT);
    if (ex <= 0) {
        if (ex < 0)
            qt_ck_h5_fail(c->err, c->errlen, "%s: cannot look up /%s", c->path, name);
        return ex < 0 ? -1 : 0;
    }
    hid_t o = H5Oopen(fid, name, H5P_DEFAULT);
    if (o < 0) {
        qt_ck_h5_fail(c->err, c->errlen, "%s: cannot open /%s", c->path, name);
        return -1;
    }
    H5I_type_t ty = H5Iget_type(o);
    H5Oclose(o);
    if (ty != H5I_GROUP) {
        snprintf(c->err, c->errlen, "%s: /%s is not a group", c->path, name);
        return -1;
    }
    return 1;
}

typedef struct names {
    const ctx *c;
    const char *group;
    size_t maxlen;    /* names must be shorter, to fit the qt_ckpt name fields */
    int flat;         /* sub-groups not allowed (rng) */
    int failed;       /* collect() failed and wrote the message */
    attr_list *attrs; /* non-NULL (/params): the objects' attributes are collected too */
    char **v;
    size_t n, cap;
} names;

static herr_t collect(hid_t g, const char *name, const H5L_info_t *info, void *user) {
    names *s = user;
    const ctx *c = s->c;
    if (info->type != H5L_TYPE_HARD) {
        /* A soft or external link could point anywhere, even into another file. */
        snprintf(c->err, c->errlen, "%s: /%s/%s is a soft or external link", c->path, s->group,
                 name);
        s->failed = 1;
        return -1;
    }
    hid_t o = H5Oopen(g, name, H5P_DEFAULT);
    if (o < 0) {
        qt_ck_h5_fail(c->err, c->errlen, "%s: cannot open /%s/%s", c->path, s->group, name);
        s->failed = 1;
        return -1;
    }
    H5I_type_t ty = H5Iget_type(o);
    int attr_rc = 0;
    if (s->attrs && strlen(name) < QT_CKPT_NAME_MAX)
        attr_rc = read_extra_attrs(c, o, name, s->attrs);
    H5Oclose(o);
    if (attr_rc != 0) {
        s->failed = 1;
        return -1;
    }
    if (ty == H5I_GROUP && !s->flat)
        return 0; /* its members are visited next */
    if (ty != H5I_DATASET) {
        snprintf(c->err, c->errlen, "%s: /%s/%s is not a dataset", c->path, s->group, name);
        s->failed = 1;
        return -1;
    }
    if (strlen(name) >= s->maxlen) {
        snprintf(c->err, c->errlen, "%s: /%s/%s: name longer than %zu bytes", c->path, s->group,
                 name, s->maxlen - 1);
        s->failed = 1;
        return -1;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        char **v = realloc(s->v, cap * sizeof *v);
        if (!v)
            goto oom;
        s->v = v;
        s->cap = cap;
    }
    if (!(s->v[s->n] = malloc(strlen(name) + 1)))
        goto oom;
    strcpy(s->v[s->n++], name);
    return 0;
oom:
    snprintf(c->err, c->errlen, "%s: out of memory listing /%s", c->path, s->group);
    s->failed = 1;
    return -1;
}

static void names_free(names *s) {
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists every dataset below group g (names relative to it), sorted bytewise. */
static int list_datasets(const ctx *c, hid_t g, names *s) {
    if (H5Lvisit(g, H5_INDEX_NAME, H5_ITER_INC, collect, s) < 0) {
        if (!s->failed) /* else collect() already said what was wrong */
            qt_ck_h5_fail(c->err, c->errlen, "%s: cannot list /%s", c->path, s->group);
        return -1;
    }
    if (s->n)
        qsort(s->v, s->n, sizeof *s->v, cmp_str);
    return 0;
}

/* Reads dataset grp/name whose element type must be one of the accepted ones into a fresh buffer.
 * want_u64: the /rng case (uint64); otherwise float32 or uint8 (*dtype says which). */
static int read_dataset(const ctx *c, hid_t grp, const char *group, const char *name, int want_u64,
                        qt_ck_dtype *dtype, int *ndim, int64_t *shape, void **out) {
    int rc = -1;
    hid_t ds = -1, t = -1, sp = -1, mtype = -1;
    void *buf = NULL;
    size_t esize = 0;
    if ((ds = H5Dopen2(grp, name, H5P_DEFAULT)) < 0 || (t = H5Dget_type(ds)) < 0 ||
        (sp = H5Dget_space(ds)) < 0) {
        qt_ck_h5_fail(c->err, c->errlen, "%s: cannot open dataset /%s/%s", c->path, group, name);
        goto done;
    }
    H5T_class_t cls = H5Tget_class(t);
    size_t tsize = H5Tget_size(t);
    H5T_sign_t sign = cls == H5T_INTEGER ? H5Tget_sign(t) : H5T_SGN_ERROR;
    if (want_u64 && cls == H5T_INTEGER && tsize == 8 && sign == H5T_SGN_NONE) {
        mtype = H5T_NATIVE_UINT64, esize = 8;
    } else if (!want_u64 && cls == H5T_FLOAT && tsize == 4) {
        mtype = H5T_NATIVE_FLOAT, esize = 4, *dtype = QT_CK_F32;
    } else if (!want_u64 && cls == H5T_INTEGER && tsize == 1 && sign == H5T_SGN_NONE) {
        mtype = H5T_NATIVE_UINT8, esize = 1, *dtype = QT_CK_U8;
    } else {
        snprintf(c->err, c->errlen,
                 "%s: /%s/%s has an unsupported element type (%zu-byte %s), "
                 "expected %s",
                 c->path, group, name, tsize,
                 cls == H5T_FLOAT     ? "float"
                 : cls == H5T_INTEGER ? "integer"
                                      : "non-numeric",
                 want_u64 ? "uint64" : "float32 or uint8");
        goto done;
    }
    int nd = H5Sget_simple_extent_ndims(sp);
    hsize_t dims[4];
    if (nd < 1 || nd > 4 || H5Sget_simple_extent_dims(sp, dims, NULL) != nd) {
        snprintf(c->err, c->errlen, "%s: /%s/%s has %d dimensions, expected 1 to 4", c->path, group,
                 name, nd);
        goto done;
    }
    uint64_t bytes = esize;
    for (int d = 0; d < nd; d++) {
        /* Bounded by the file size, so a damaged header cannot trigger a huge allocation. */
        if (dims[d] < 1 || dims[d] > c->file_size / bytes) {
            snprintf(c->err, c->errlen,
                     "%s: /%s/%s has an impossible shape (dimension %d is "
                     "%llu; the file holds %" PRIu64 " bytes)",
                     c->path, group, name, d, (unsigned long long)dims[d], c->file_size);
            goto done;
        }
        bytes *= dims[d];
        shape[d] = (int64_t)dims[d];
    }
    *ndim = nd;
    if (!(buf = malloc((size_t)bytes))) {
        snprintf(c->err, c->errlen, "%s: out of memory for /%s/%s (%" PRIu64 " bytes)", c->path,
                 group, name, bytes);
        goto done;
    }
    if (H5Dread(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        char inner[256];
        qt_ck_h5_innermost(inner, sizeof inner);
        if (strstr(inner, "Fletcher32") || strstr(inner, "checksum"))
            snprintf(c->err, c->errlen, "%s: /%s/%s is corrupted (Fletcher32 checksum failed)",
                     c->path, group, name);
        else
            snprintf(c->err, c->errlen, "%s: cannot read /%s/%s (HDF5: %s)", c->path, group, name,
                     inner[0] ? inner : "no detail");
        goto done;
    }
    *out = buf;
    buf = NULL;
    rc = 0;
done:
    free(buf);
    if (sp >= 0)
        H5Sclose(sp);
    if (t >= 0)
        H5Tclose(t);
    if (ds >= 0)
        H5Dclose(ds);
    return rc;
}

/* Loads every dataset below /group into a fresh array of tensors. */
static int read_tensors(const ctx *c, hid_t fid, const char *group, attr_list *attrs,
                        qt_ckpt_tensor **arr, size_t *count) {
    int rc = -1;
    names s = {c, group, QT_CKPT_NAME_MAX, 0, 0, attrs, NULL, 0, 0};
    hid_t g = H5Gopen2(fid, group, H5P_DEFAULT);
    if (g < 0) {
        qt_ck_h5_fail(c->err, c->errlen, "%s: cannot open group /%s", c->path, group);
        goto done;
    }
    if (list_datasets(c, g, &s) != 0)
        goto done;
    if (s.n && !(*arr = calloc(s.n, sizeof **arr))) {
        snprintf(c->err, c->errlen, "%s: out of memory for /%s", c->path, group);
        goto done;
    }
    *count = s.n; /* the buffers start NULL, so qt_ckpt_free can release a partial array */
    for (size_t i = 0; i < s.n; i++) {
        qt_ckpt_tensor *t = &(*arr)[i];
        strcpy(t->name, s.v[i]); /* length checked while listing */
        if (read_dataset(c, g, group, t->name, 0, &t->dtype, &t->ndim, t->shape, &t->data) != 0)
            goto done;
    }
    rc = 0;
done:
    names_free(&s);
    if (g >= 0)
        H5Gclose(g);
    return rc;
}

static int read_rngs(const ctx *c, hid_t fid, qt_ckpt *ck) {
    int rc = -1;
    names s = {c, "rng", sizeof ck->rngs[0].name, 1, 0, NULL, NULL, 0, 0};
    hid_t g = H5Gopen2(fid, "rng", H5P_DEFAULT);
    if (g < 0) {
        qt_ck_h5_fail(c->err, c->errlen, "%s: cannot open group /rng", c->path);
        goto done;
    }
    if (list_datasets(c, g, &s) != 0)
        goto done;
    if (s.n && !(ck->rngs = calloc(s.n, sizeof *ck->rngs))) {
        snprintf(c->err, c->errlen, "%s: out of memory for /rng", c->path);
        goto done;
    }
    for (size_t i = 0; i < s.n; i++) {
        qt_ckpt_rng *r = &ck->rngs[ck->n_rngs];
        int ndim = 0;
        int64_t shape[4];
        void *state = NULL;
        if (read_dataset(c, g, "rng", s.v[i], 1, NULL, &ndim, shape, &state) != 0)
            goto done;
        int ok = ndim == 1 && shape[0] == 4;
        if (ok)
            memcpy(r->s, state, sizeof r->s);
        free(state);
        if (!ok) {
            snprintf(c->err, c->errlen, "%s: /rng/%s must hold 4 uint64 values", c->path, s.v[i]);
            goto done;
        }
        strcpy(r->name, s.v[i]);
        ck->n_rngs++;
    }
    rc = 0;
done:
    names_free(&s);
    if (g >= 0)
        H5Gclose(g);
    return rc;
}

/* ---- the whole file ---- */

static int parse_kind(const ctx *c, const char *s, qt_ckpt_kind *k) {
    for (int i = QT_CKPT_TRAIN; i <= QT_CKPT_PTQ; i++)
        if (strcmp(s, qt_ckpt_kind_name((qt_ckpt_kind)i)) == 0) {
            *k = (qt_ckpt_kind)i;
            return 0;
        }
    snprintf(c->err, c->errlen,
             "%s: unknown checkpoint kind '%.40s' (expected train, anchor or ptq)", c->path, s);
    return -1;
}

/* Everything after the file is open: attributes, groups, datasets, checksum. */
static int read_open(const ctx *c, hid_t fid, qt_ckpt *ck) {
    int rc = -1;
    int64_t version = 0;
    uint64_t stored = 0;
    char *kind = NULL, *config = NULL;
    qt_ck_item *items = NULL;
    const qt_ckpt_attr **order = NULL;
    attr_list attrs = {NULL, 0, 0};
    hid_t g = -1;

    if (get_num(c, fid, "/", "qat_format_version", H5T_INTEGER, H5T_NATIVE_INT64, &version) != 0)
        goto done;
    if (version != QT_CKPT_VERSION) {
        snprintf(c->err, c->errlen,
                 "%s: qat_format_version is %" PRId64 ", but this build "
                 "supports %d only",
                 c->path, version, QT_CKPT_VERSION);
        goto done;
    }
    if (get_str(c, fid, "/", "kind", &kind) != 0 || parse_kind(c, kind, &ck->kind) != 0 ||
        get_num(c, fid, "/", "step", H5T_INTEGER, H5T_NATIVE_INT64, &ck->step) != 0 ||
        get_str(c, fid, "/", "config", &config) != 0 ||
        get_num(c, fid, "/", "model_hash", H5T_INTEGER, H5T_NATIVE_UINT64, &ck->model_hash) != 0 ||
        get_num(c, fid, "/", "checksum", H5T_INTEGER, H5T_NATIVE_UINT64, &stored) != 0)
        goto done;
    ck->config_text = config; /* owned by ck from here on */
    config = NULL;

    /* /params always; a training checkpoint also needs everything a resume restores. */
    static const char *const groups[4] = {"params", "optim", "rng", "data"};
    int present[4];
    for (int i = 0; i < 4; i++) {
        if ((present[i] = has_group(c, fid, groups[i])) < 0)
            goto done;
        if (!present[i] && (i == 0 || ck->kind == QT_CKPT_TRAIN)) {
            snprintf(c->err, c->errlen, "%s: missing group /%s (a %s checkpoint needs it)", c->path,
                     groups[i], qt_ckpt_kind_name(ck->kind));
            goto done;
        }
    }
    if (read_extra_attrs(c, fid, "", &attrs) != 0 ||
        read_tensors(c, fid, "params", &attrs, &ck->params, &ck->n_params) != 0)
        goto done;
    ck->attrs = attrs.v; /* owned by ck from here on */
    ck->n_attrs = attrs.n;
    attrs.v = NULL;
    if (ck->n_attrs)
        qsort(ck->attrs, ck->n_attrs, sizeof *ck->attrs, cmp_attr_values);
    if (present[1]) {
        if ((g = H5Gopen2(fid, "optim", H5P_DEFAULT)) < 0) {
            qt_ck_h5_fail(c->err, c->errlen, "%s: cannot open group /optim", c->path);
            goto done;
        }
        if (get_num(c, g, "/optim", "step", H5T_INTEGER, H5T_NATIVE_INT64, &ck->optim_step) != 0 ||
            get_num(c, g, "/optim", "lr", H5T_FLOAT, H5T_NATIVE_DOUBLE, &ck->optim_lr) != 0)
            goto done;
        H5Gclose(g);
        g = -1;
        if (read_tensors(c, fid, "optim", NULL, &ck->optim, &ck->n_optim) != 0)
            goto done;
    }
    if (present[2] && read_rngs(c, fid, ck) != 0)
        goto done;
    if (present[3]) {
        if ((g = H5Gopen2(fid, "data", H5P_DEFAULT)) < 0) {
            qt_ck_h5_fail(c->err, c->errlen, "%s: cannot open group /data", c->path);
            goto done;
        }
        if (get_num(c, g, "/data", "epoch", H5T_INTEGER, H5T_NATIVE_INT64, &ck->data_epoch) != 0 ||
            get_num(c, g, "/data", "cursor", H5T_INTEGER, H5T_NATIVE_INT64, &ck->data_cursor) != 0)
            goto done;
    }

    size_t n = ck->n_params + ck->n_optim + ck->n_rngs;
    if (!(items = malloc((n ? n : 1) * sizeof *items)) ||
        !(order = malloc((ck->n_attrs ? ck->n_attrs : 1) * sizeof *order))) {
        snprintf(c->err, c->errlen, "%s: out of memory", c->path);
        goto done;
    }
    n = qt_ck_items_of(ck, items);
    for (size_t i = 0; i < ck->n_attrs; i++)
        order[i] = &ck->attrs[i];
    uint64_t computed = qt_ck_checksum(items, n, order, ck->n_attrs, ck);
    if (computed != stored) {
        snprintf(c->err, c->errlen,
                 "%s: checksum mismatch: file is corrupted (datasets or attributes differ: "
                 "stored %016" PRIx64 ", computed %016" PRIx64 ")",
                 c->path, stored, computed);
        goto done;
    }
    rc = 0;
done:
    if (g >= 0)
        H5Gclose(g);
    free(attrs.v);
    free(order);
    free(items);
    free(config);
    free(kind);
    return rc;
}

int qt_ckpt_read(const char *path, qt_ckpt *ck, char *err, size_t errlen) {
    char ebuf[128], scratch[1];
    if (!err || !errlen) /* messages are optional for callers that only want a yes or no */
        err = scratch, errlen = sizeof scratch;
    ctx c = {path, 0, err, errlen};
    qt_ck_h5quiet quiet;
    hid_t fapl = -1, fid = -1;
    int rc = -1;
    memset(ck, 0, sizeof *ck);
    qt_ck_h5_quiet_begin(&quiet);

    /* Our own checks first: HDF5's messages for these cases are vague. */
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "%s: cannot open checkpoint: %s", path,
                 qt_ck_strerror(errno, ebuf, sizeof ebuf));
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        goto done;
    }
    c.file_size = (uint64_t)st.st_size;
    /* Every byte is verified before HDF5 parses any (a damaged file can crash HDF5). */
    if (qt_ck_frame_check(path, c.file_size, err, errlen) < 0)
        goto done;
    htri_t is_h5 = c.file_size ? H5Fis_hdf5(path) : 0;
    if (is_h5 <= 0) {
        if (is_h5 < 0)
            qt_ck_h5_fail(err, errlen, "%s: cannot check whether this is an HDF5 file", path);
        else
            snprintf(err, errlen, "%s: not an HDF5 file (%" PRIu64 " bytes, no HDF5 signature)",
                     path, c.file_size);
        goto done;
    }
    /* Files are replaced by rename and never written through HDF5, so HDF5's file locks protect
     * nothing here; skipping them avoids failures on file systems without flock (some NFS). */
    if ((fapl = H5Pcreate(H5P_FILE_ACCESS)) < 0 || H5Pset_file_locking(fapl, 0, 1) < 0) {
        qt_ck_h5_fail(err, errlen, "%s: cannot make a file access property list", path);
        goto done;
    }
    if ((fid = H5Fopen(path, H5F_ACC_RDONLY, fapl)) < 0) {
        qt_ck_h5_fail(err, errlen, "%s: cannot open as HDF5: truncated or damaged file", path);
        goto done;
    }
    rc = read_open(&c, fid, ck);
done:
    if (fid >= 0)
        H5Fclose(fid);
    if (fapl >= 0)
        H5Pclose(fapl);
    if (rc != 0)
        qt_ckpt_free(ck);
    qt_ck_h5_quiet_end(&quiet);
    return rc;
}
