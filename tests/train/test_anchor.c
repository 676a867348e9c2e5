/* test_anchor.c — anchor checkpoints: the extra attributes of the checkpoint layer (round trip,
 * validation, checksum coverage), the anchor layout byte for byte against mx_quantize + mx_pack,
 * Slice-and-Scale conversion against mx_slice_and_scale, evaluation from an anchor against a
 * model whose weights were set by hand (bit-identical losses), and every refusal. */
#define _POSIX_C_SOURCE 200809L

#include "qttest.h"

#include "data/data.h"
#include "train/io/anchor.h"
#include "train/io/ckpt_internal.h" /* qt_ck_frame_seal: reseal a file edited through HDF5 */
#include "train/run/evaluate.h"

#include <dirent.h>
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define assert_has(str, sub)                                                                       \
    do {                                                                                           \
        if (!strstr((str), (sub))) {                                                               \
            print_error("message '%s' lacks '%s'\n", (str), (sub));                                \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

/* ---- fixture: a fresh directory per test, emptied afterwards (it holds only files) ---- */

typedef struct fx {
    char dir[64];
    char path[128];
} fx;

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/qat_anchor_XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/anchor.h5", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    DIR *d = opendir(f->dir);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", f->dir, de->d_name);
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* ---- a small model with varied block scales ---- */

/* d_model 48 and d_ff 80 are not multiples of 32: every row ends with a short block. */
static void small_config(qt_config *c, bool tied, bool head) {
    assert_int_equal(qt_config_defaults(c), 0);
    c->model.n_layer = 2;
    c->model.n_head = 2;
    c->model.d_model = 48;
    c->model.d_ff = 80;
    c->model.seq_len = 8;
    c->model.tie_embeddings = tied;
    c->quant.quantize_head = head;
    c->data.batch_size = 2;
    c->run.eval_batches = 3;
}

static double normal_cb(void *rng) { return data_rng_normal(rng); }

/* GPT-2 init, then rows scaled over many binades, one all-zero row and one tiny row (scale clamped
 * at 2^-127 in some formats), so every Slice-and-Scale path is exercised. */
static qt_model *make_model(const qt_config *c, uint64_t seed) {
    char err[256];
    qt_model *m = qt_model_create(c, err, sizeof err);
    assert_non_null(m);
    data_rng rng;
    data_rng_seed(&rng, seed, DATA_STREAM_INIT);
    qt_model_init(m, normal_cb, &rng);
    for (size_t i = 0; i < m->n_params; i++) {
        ag_tensor *t = &m->params[i].t;
        if (t->ndim != 2)
            continue;
        size_t rows = (size_t)t->shape[0], cols = (size_t)t->shape[1];
        float *w = t->data;
        for (size_t r = 0; r < rows; r++) {
            float s = r == 1 ? 0.0f : r == 2 ? 1e-38f : ldexpf(1.0f, (int)(r % 13) - 6);
            for (size_t k = 0; k < cols; k++)
                w[r * cols + k] *= s;
        }
    }
    return m;
}

static size_t numel(const ag_tensor *t) { return t->numel; }

static const qt_anchor_tensor *find_tensor(const qt_anchor_ckpt *a, const char *name) {
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->t[i].name, name) == 0)
            return &a->t[i];
    return NULL;
}

/* ---- the checkpoint layer: extra attributes ---- */

static void test_ckpt_attrs_round_trip(void **state) {
    fx *f = *state;
    float w[6] = {1, 2, 3, 4, 5, 6};
    uint8_t el[3] = {7, 8, 9};
    qt_ckpt_tensor params[2] = {
        {.name = "a.w", .dtype = QT_CK_F32, .ndim = 2, .shape = {2, 3}, .data = w},
        {.name = "g/elements", .dtype = QT_CK_U8, .ndim = 1, .shape = {3}, .data = el}};
    qt_ckpt_attr attrs[6];
    const int64_t v[4] = {-1, 2, INT64_MAX, INT64_MIN};
    qt_ckpt_attr_str(&attrs[0], "", "format", "mxint8");
    qt_ckpt_attr_ints(&attrs[1], "", "one", v + 1, 1);
    qt_ckpt_attr_ints(&attrs[2], "g", "shape", v, 4);
    qt_ckpt_attr_str(&attrs[3], "g", "rounding", "nearest");
    qt_ckpt_attr_str(&attrs[4], "a.w", "note", ""); /* on a dataset, empty string */
    qt_ckpt_attr_ints(&attrs[5], "g/elements", "n", v, 2);
    qt_ckpt ck = {.kind = QT_CKPT_ANCHOR,
                  .step = 3,
                  .params = params,
                  .n_params = 2,
                  .attrs = attrs,
                  .n_attrs = 6};
    char err[512] = "";
    assert_int_equal(qt_ckpt_write(f->path, &ck, err, sizeof err), 0);
    qt_ckpt r;
    assert_int_equal(qt_ckpt_read(f->path, &r, err, sizeof err), 0);
    assert_int_equal(r.n_attrs, 6);
    /* Sorted by (object, name). */
    static const char *const order[6][2] = {{"", "format"},    {"", "one"},    {"a.w", "note"},
                                            {"g", "rounding"}, {"g", "shape"}, {"g/elements", "n"}};
    for (int i = 0; i < 6; i++) {
        assert_string_equal(r.attrs[i].obj, order[i][0]);
        assert_string_equal(r.attrs[i].name, order[i][1]);
    }
    const qt_ckpt_attr *a = qt_ckpt_find_attr(&r, "g", "shape");
    assert_non_null(a);
    assert_int_equal(a->type, QT_CK_ATTR_INT);
    assert_int_equal(a->n, 4);
    assert_memory_equal(a->ints, v, sizeof v);
    assert_string_equal(qt_ckpt_find_attr(&r, "", "format")->str, "mxint8");
    assert_int_equal(qt_ckpt_find_attr(&r, "", "one")->ints[0], 2);
    assert_int_equal(qt_ckpt_find_attr(&r, "", "one")->n, 1);
    assert_string_equal(qt_ckpt_find_attr(&r, "a.w", "note")->str, "");
    assert_null(qt_ckpt_find_attr(&r, "g", "nope"));
    assert_null(qt_ckpt_find_attr(&r, "", "kind")); /* fixed attributes are not extras */
    qt_ckpt_free(&r);
    assert_null(r.attrs);

    /* Invalid extras are refused with a reason, and nothing is written. */
    unlink(f->path);
    struct {
        const char *obj, *name, *why;
    } bad[] = {{"h", "x", "no tensor of /params"},
               {"g/", "x", "path component"},
               {"", "kind", "fixed root attribute"},
               {"g", "a/b", "'/'"},
               {"", "", "empty name"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        qt_ckpt_attr one;
        qt_ckpt_attr_str(&one, bad[i].obj, bad[i].name, "v");
        ck.attrs = &one;
        ck.n_attrs = 1;
        assert_int_equal(qt_ckpt_write(f->path, &ck, err, sizeof err), -1);
        assert_has(err, bad[i].why);
        assert_int_equal(access(f->path, F_OK), -1);
    }
    qt_ckpt_attr two[2];
    qt_ckpt_attr_str(&two[0], "g", "x", "1");
    qt_ckpt_attr_ints(&two[1], "g", "x", v, 1);
    ck.attrs = two;
    ck.n_attrs = 2;
    assert_int_equal(qt_ckpt_write(f->path, &ck, err, sizeof err), -1);
    assert_has(err, "duplicate attribute 'x' of /params/g");
    qt_ckpt_attr_ints(&two[0], "g", "y", v, 4);
    two[0].n = 5;
    assert_int_equal(qt_ckpt_write(f->path, &ck, err, sizeof err), -1);
    assert_has(err, "integer count");
}

/* Opens path with HDF5 for writing, lets fn edit it, then reseals the qat header so that only the
 * checksum attribute can notice. */
static void edit_and_reseal(const char *path, void (*fn)(hid_t fid)) {
    hid_t fid = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(fid >= 0);
    fn(fid);
    assert_true(H5Fclose(fid) >= 0);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    size_t n = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc(n);
    assert_int_equal(fread(b, 1, n, fp), n);
    fclose(fp);
    qt_ck_frame_seal(b, n);
    fp = fopen(path, "wb");
    assert_int_equal(fwrite(b, 1, n, fp), n);
    fclose(fp);
    free(b);
}

static void rewrite_shape(hid_t fid) {
    /* Delete and recreate: what a tool rewriting the attribute with a new value does. */
    hid_t g = H5Gopen2(fid, "params/h.0.attn.wq", H5P_DEFAULT);
    assert_true(g >= 0);
    assert_true(H5Adelete(g, "shape") >= 0);
    hsize_t two = 2;
    hid_t sp = H5Screate_simple(1, &two, NULL);
    hid_t a = H5Acreate2(g, "shape", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    int64_t v[2] = {48, 47};
    assert_true(H5Awrite(a, H5T_NATIVE_INT64, v) >= 0);
    H5Aclose(a);
    H5Sclose(sp);
    H5Gclose(g);
}

static void add_float_attr(hid_t fid) {
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(fid, "note", H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    double x = 1.5;
    assert_true(H5Awrite(a, H5T_NATIVE_DOUBLE, &x) >= 0);
    H5Aclose(a);
    H5Sclose(sp);
}

static void add_string_attr(hid_t fid) {
    hid_t sp = H5Screate(H5S_SCALAR), st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, 4);
    hid_t a = H5Acreate2(fid, "note", st, sp, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(H5Awrite(a, st, "abcd") >= 0);
    H5Aclose(a);
    H5Tclose(st);
    H5Sclose(sp);
}

/* ---- anchors ---- */

static void write_model_anchor(const char *path, const qt_model *m, bool head, mx_format f,
                               mx_rounding r, qt_anchor_ckpt *a) {
    char err[512] = "";
    assert_int_equal(qt_anchor_from_model(a, m, head, f, r, "[run]\nseed = 5\n", 77,
                                          0x1234567890ABCDEFull, err, sizeof err),
                     0);
    assert_int_equal(qt_anchor_write(path, a, err, sizeof err), 0);
}

static void test_checksum_covers_attributes(void **state) {
    fx *f = *state;
    qt_config c;
    small_config(&c, false, true);
    qt_model *m = make_model(&c, 1);
    qt_anchor_ckpt a, r;
    char err[512] = "";
    write_model_anchor(f->path, m, true, MX_INT8, MX_ROUND_EVEN, &a);
    assert_int_equal(qt_anchor_read(f->path, &r, err, sizeof err), 0);
    qt_anchor_free(&r);
    edit_and_reseal(f->path, rewrite_shape);
    assert_int_equal(qt_anchor_read(f->path, &r, err, sizeof err), -1);
    assert_has(err, f->path);
    assert_has(err, "checksum mismatch");

    /* A foreign attribute is reported by type, or caught by the checksum. */
    assert_int_equal(qt_anchor_write(f->path, &a, err, sizeof err), 0);
    edit_and_reseal(f->path, add_float_attr);
    assert_int_equal(qt_anchor_read(f->path, &r, err, sizeof err), -1);
    assert_has(err, "attribute 'note' of / has an unsupported type");
    assert_int_equal(qt_anchor_write(f->path, &a, err, sizeof err), 0);
    edit_and_reseal(f->path, add_string_attr);
    assert_int_equal(qt_anchor_read(f->path, &r, err, sizeof err), -1);
    assert_has(err, "checksum mismatch");
    qt_anchor_free(&a);
    qt_model_free(m);
    qt_config_free(&c);
}

/* The file holds exactly mx_pack(mx_quantize(W)) and the scales of mx_quantize, for the parameters
 * qt_model_param_quantized selects; every other tensor is the float32 weight, bit for bit. */
static void check_anchor_file(const char *path, const qt_model *m, bool head, mx_format f,
                              mx_rounding r) {
    qt_ckpt ck;
    char err[512] = "";
    assert_int_equal(qt_ckpt_read(path, &ck, err, sizeof err), 0);
    assert_int_equal(ck.kind, QT_CKPT_ANCHOR);
    assert_int_equal(ck.step, 77);
    assert_int_equal(ck.model_hash, 0x1234567890ABCDEFull);
    assert_string_equal(ck.config_text, "[run]\nseed = 5\n");
    const char *rname = r == MX_ROUND_EVEN ? "even" : "nearest";
    assert_string_equal(qt_ckpt_find_attr(&ck, "", "format")->str, mx_format_name(f));
    assert_string_equal(qt_ckpt_find_attr(&ck, "", "rounding")->str, rname);
    assert_null(qt_ckpt_find_attr(&ck, "", "source_format"));
    size_t n_quant = 0;
    for (size_t i = 0; i < m->n_params; i++) {
        const qt_param *p = &m->params[i];
        char name[QT_CKPT_NAME_MAX + 16];
        if (!qt_model_param_quantized(m, p, head)) {
            const qt_ckpt_tensor *t = qt_ckpt_find(ck.params, ck.n_params, p->name);
            assert_non_null(t);
            assert_int_equal(t->dtype, QT_CK_F32);
            assert_int_equal(t->ndim, p->t.ndim);
            assert_memory_equal(t->data, p->t.data, numel(&p->t) * sizeof(float));
            continue;
        }
        n_quant++;
        size_t rows = (size_t)p->t.shape[0], cols = (size_t)p->t.shape[1], n = rows * cols;
        size_t ns = rows * mx_num_blocks(cols), np = mx_packed_size(f, n);
        uint8_t *codes = malloc(n), *scales = malloc(ns), *packed = malloc(np);
        mx_quantize(p->t.data, codes, scales, rows, cols, f, r);
        mx_pack(codes, n, f, packed);
        snprintf(name, sizeof name, "%s/elements", p->name);
        const qt_ckpt_tensor *el = qt_ckpt_find(ck.params, ck.n_params, name);
        snprintf(name, sizeof name, "%s/scales", p->name);
        const qt_ckpt_tensor *sc = qt_ckpt_find(ck.params, ck.n_params, name);
        assert_non_null(el);
        assert_non_null(sc);
        assert_null(qt_ckpt_find(ck.params, ck.n_params, p->name));
        assert_int_equal(el->dtype, QT_CK_U8);
        assert_int_equal(el->ndim, 1);
        assert_int_equal(el->shape[0], np);
        assert_memory_equal(el->data, packed, np);
        assert_int_equal(sc->ndim, 2);
        assert_int_equal(sc->shape[0], rows);
        assert_int_equal(sc->shape[1], mx_num_blocks(cols));
        assert_memory_equal(sc->data, scales, ns);
        const qt_ckpt_attr *shape = qt_ckpt_find_attr(&ck, p->name, "shape");
        assert_non_null(shape);
        assert_int_equal(shape->n, 2);
        assert_int_equal(shape->ints[0], rows);
        assert_int_equal(shape->ints[1], cols);
        assert_string_equal(qt_ckpt_find_attr(&ck, p->name, "format")->str, mx_format_name(f));
        assert_string_equal(qt_ckpt_find_attr(&ck, p->name, "rounding")->str, rname);
        free(codes);
        free(scales);
        free(packed);
    }
    assert_int_equal(ck.n_params, m->n_params + n_quant);
    assert_int_equal(ck.n_attrs, 2 + 3 * n_quant);
    qt_ckpt_free(&ck);
}

static void test_anchor_round_trip(void **state) {
    fx *f = *state;
    static const struct {
        bool tied, head;
        mx_format f;
        mx_rounding r;
    } cases[] = {{false, true, MX_INT8, MX_ROUND_EVEN},
                 {true, false, MX_FP8_E4M3, MX_ROUND_NEAREST},
                 {true, true, MX_FP8_E5M2, MX_ROUND_EVEN},
                 {false, false, MX_INT8, MX_ROUND_NEAREST}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        qt_config c;
        small_config(&c, cases[k].tied, cases[k].head);
        qt_model *m = make_model(&c, 10 + k);
        qt_anchor_ckpt a, r;
        write_model_anchor(f->path, m, cases[k].head, cases[k].f, cases[k].r, &a);
        /* head decides lm_head (or the tied wte); the block matrices are always quantized. */
        size_t nq = qt_anchor_quantized_count(&a, NULL);
        assert_int_equal(nq, 6 * 2 + (cases[k].head ? 1 : 0));
        check_anchor_file(f->path, m, cases[k].head, cases[k].f, cases[k].r);
        char err[512] = "";
        assert_int_equal(qt_anchor_read(f->path, &r, err, sizeof err), 0);
        assert_int_equal(r.format, cases[k].f);
        assert_int_equal(r.source, MX_FP32);
        assert_int_equal(r.rounding, cases[k].r);
        assert_int_equal(r.step, 77);
        assert_int_equal(r.n, m->n_params);
        for (size_t i = 0; i < a.n; i++) {
            const qt_anchor_tensor *x = &a.t[i], *y = find_tensor(&r, x->name);
            assert_non_null(y);
            assert_int_equal(y->quantized, x->quantized);
            assert_int_equal(y->ndim, x->ndim);
            assert_memory_equal(y->shape, x->shape, sizeof x->shape);
            size_t n = 1;
            for (int d = 0; d < x->ndim; d++)
                n *= (size_t)x->shape[d];
            if (x->quantized) {
                assert_memory_equal(y->codes, x->codes, n);
                assert_memory_equal(y->scales, x->scales,
                                    (size_t)x->shape[0] * mx_num_blocks((size_t)x->shape[1]));
            } else {
                assert_memory_equal(y->data, x->data, n * sizeof(float));
            }
        }
        assert_true(qt_anchor_head_quantized(&r, m) == cases[k].head);
        qt_anchor_free(&r);
        qt_anchor_free(&a);
        qt_anchor_free(&a); /* idempotent */
        qt_model_free(m);
        qt_config_free(&c);
    }
}

/* Converting gives mx_slice_and_scale of the anchor codes for every anchor format, every MX
 * destination (8 down to 2 bits) and both roundings; converted files hold them packed
 * (mx_pack) and read back with their source. */
static void test_convert_equals_slice_and_scale(void **state) {
    fx *f = *state;
    qt_config c;
    small_config(&c, false, true);
    qt_model *m = make_model(&c, 3);
    static const mx_format anchors[3] = {MX_INT8, MX_FP8_E4M3, MX_FP8_E5M2};
    char out[256], err[512] = "";
    snprintf(out, sizeof out, "%s/low.h5", f->dir);
    for (int ai = 0; ai < 3; ai++)
        for (int ri = 0; ri < 2; ri++) {
            qt_anchor_ckpt a, low, r;
            write_model_anchor(f->path, m, true, anchors[ai], (mx_rounding)ri, &a);
            qt_anchor_ckpt src;
            assert_int_equal(qt_anchor_read(f->path, &src, err, sizeof err), 0);
            for (int d = MX_INT8; d < MX_FORMAT_COUNT; d++) {
                mx_format dst = (mx_format)d;
                assert_int_equal(qt_anchor_convert(&src, dst, &low, err, sizeof err), 0);
                assert_int_equal(low.format, dst);
                assert_int_equal(low.source, dst == src.format ? MX_FP32 : src.format);
                for (size_t i = 0; i < src.n; i++) { /* in memory: every pair, both roundings */
                    const qt_anchor_tensor *t = &src.t[i];
                    if (!t->quantized)
                        continue;
                    size_t rows = (size_t)t->shape[0], cols = (size_t)t->shape[1];
                    size_t ns = rows * mx_num_blocks(cols);
                    uint8_t *codes = malloc(rows * cols), *scales = malloc(ns);
                    mx_slice_and_scale(t->codes, t->scales, src.format, codes, scales, dst, rows,
                                       cols, (mx_rounding)ri);
                    assert_memory_equal(low.t[i].codes, codes, rows * cols);
                    assert_memory_equal(low.t[i].scales, scales, ns);
                    free(codes);
                    free(scales);
                }
                /* On disk (each write fsyncs): every destination from E4M3, mxint4 from the
                 * others; that covers every packed width. */
                if (ri != 0 || (anchors[ai] != MX_FP8_E4M3 && dst != MX_INT4)) {
                    qt_anchor_free(&low);
                    continue;
                }
                assert_int_equal(qt_anchor_write(out, &low, err, sizeof err), 0);
                qt_ckpt ck;
                assert_int_equal(qt_ckpt_read(out, &ck, err, sizeof err), 0);
                if (dst != src.format)
                    assert_string_equal(qt_ckpt_find_attr(&ck, "", "source_format")->str,
                                        mx_format_name(src.format));
                for (size_t i = 0; i < src.n; i++) {
                    const qt_anchor_tensor *t = &src.t[i];
                    if (!t->quantized)
                        continue;
                    size_t rows = (size_t)t->shape[0], cols = (size_t)t->shape[1], n = rows * cols;
                    size_t ns = rows * mx_num_blocks(cols), np = mx_packed_size(dst, n);
                    uint8_t *codes = malloc(n), *scales = malloc(ns), *packed = malloc(np);
                    mx_slice_and_scale(t->codes, t->scales, src.format, codes, scales, dst, rows,
                                       cols, (mx_rounding)ri);
                    mx_pack(codes, n, dst, packed);
                    char name[QT_CKPT_NAME_MAX + 16];
                    snprintf(name, sizeof name, "%s/elements", t->name);
                    const qt_ckpt_tensor *el = qt_ckpt_find(ck.params, ck.n_params, name);
                    snprintf(name, sizeof name, "%s/scales", t->name);
                    const qt_ckpt_tensor *sc = qt_ckpt_find(ck.params, ck.n_params, name);
                    assert_int_equal(el->shape[0], np);
                    assert_memory_equal(el->data, packed, np);
                    assert_memory_equal(sc->data, scales, ns);
                    assert_string_equal(qt_ckpt_find_attr(&ck, t->name, "format")->str,
                                        mx_format_name(dst));
                    free(codes);
                    free(scales);
                    free(packed);
                }
                qt_ckpt_free(&ck);
                assert_int_equal(qt_anchor_read(out, &r, err, sizeof err), 0);
                assert_int_equal(r.format, dst);
                assert_int_equal(r.source, low.source);
                for (size_t i = 0; i < low.n; i++) {
                    const qt_anchor_tensor *y = find_tensor(&r, low.t[i].name);
                    assert_non_null(y);
                    if (y->quantized)
                        assert_memory_equal(y->codes, low.t[i].codes,
                                            (size_t)y->shape[0] * (size_t)y->shape[1]);
                }
                qt_anchor_free(&r);
                qt_anchor_free(&low);
            }
            qt_anchor_free(&src);
            qt_anchor_free(&a);
        }
    qt_model_free(m);
    qt_config_free(&c);
}

/* ---- evaluation from an anchor ---- */

/* An evaluator over lent validation text: the config of c, no corpus on disk. */
static void open_evaluator(qt_evaluator *e, const qt_config *c, uint8_t *val, size_t n_val) {
    for (size_t i = 0; i < n_val; i++)
        val[i] = (uint8_t)("the quick brown fox jumps over the lazy dog. "[i % 45]);
    char *text = qt_config_to_ini(c);
    assert_non_null(text);
    qt_eval_opts o = {.config_text = text, .origin = "test", .val = val, .n_val = n_val};
    char err[512] = "";
    assert_int_equal(qt_evaluator_open(e, &o, err, sizeof err), 0);
    free(text);
}

/* e->model := dequantize(SnS(quantize_anchor(W))) at f (the anchor's own format or fp32: just
 * dequantize), computed here from the mx_ kernels alone; float tensors W. */
static void set_weights_by_hand(qt_model *dst, const qt_model *src, bool head, mx_format anchor,
                                mx_format f, mx_rounding r) {
    for (size_t i = 0; i < src->n_params; i++) {
        const qt_param *p = &src->params[i];
        float *out = dst->params[i].t.data;
        if (!qt_model_param_quantized(src, p, head)) {
            memcpy(out, p->t.data, numel(&p->t) * sizeof(float));
            continue;
        }
        size_t rows = (size_t)p->t.shape[0], cols = (size_t)p->t.shape[1], n = rows * cols;
        size_t ns = rows * mx_num_blocks(cols);
        uint8_t *c8 = malloc(n), *s8 = malloc(ns), *cl = malloc(n), *sl = malloc(ns);
        mx_quantize(p->t.data, c8, s8, rows, cols, anchor, r);
        if (f == MX_FP32 || f == anchor) {
            mx_dequantize(c8, s8, out, rows, cols, anchor);
        } else {
            mx_slice_and_scale(c8, s8, anchor, cl, sl, f, rows, cols, r);
            mx_dequantize(cl, sl, out, rows, cols, f);
        }
        free(c8);
        free(s8);
        free(cl);
        free(sl);
    }
}

static void copy_weights(qt_model *dst, const qt_model *src) {
    memcpy(dst->data, src->data, src->n_floats * sizeof(float));
}

static void assert_same_loss(double a, double b, const char *what, mx_format f) {
    if (memcmp(&a, &b, sizeof a) != 0) {
        print_error("%s at %s: %.17g vs %.17g\n", what, mx_format_name(f), a, b);
        fail();
    }
}

static void test_eval_from_anchor_is_bit_identical(void **state) {
    fx *f = *state;
    static const struct {
        mx_format anchor;
        mx_rounding r;
    } cases[] = {{MX_INT8, MX_ROUND_EVEN}, {MX_FP8_E4M3, MX_ROUND_NEAREST}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        qt_config c;
        small_config(&c, false, true);
        c.quant.rounding = (qt_rounding)cases[k].r;
        qt_model *m = make_model(&c, 20 + k);
        uint8_t val[400];
        qt_evaluator e;
        open_evaluator(&e, &c, val, sizeof val);
        assert_int_equal(e.n_batches, 3);
        qt_anchor_ckpt a, r;
        char err[512] = "";
        write_model_anchor(f->path, m, true, cases[k].anchor, cases[k].r, &a);
        assert_int_equal(qt_anchor_read(f->path, &r, err, sizeof err), 0);

        mx_format fmts[16];
        qt_eval_row rows[16], direct[16];
        int n = qt_eval_parse_formats("all", fmts, 16, err, sizeof err);
        assert_int_equal(n, 10);
        for (int i = 0; i < n; i++)
            rows[i].format = direct[i].format = fmts[i];
        assert_int_equal(
            qt_eval_anchor_rows(&e, &r, f->path, true, rows, n, NULL, "t", err, sizeof err), 0);
        /* Training under weights_via_anchor sees the same weights: direct rows with via. */
        qt_quant base = {.format = MX_FP32,
                         .rounding = cases[k].r,
                         .weights_via = cases[k].anchor,
                         .activations = true,
                         .head = true};
        copy_weights(e.model, m);
        assert_int_equal(qt_eval_direct_rows(&e, &base, direct, n, NULL, "t", err, sizeof err), 0);
        for (int i = 0; i < n; i++) {
            mx_format fm = rows[i].format;
            assert_false(isnan(rows[i].loss));
            set_weights_by_hand(e.model, m, true, cases[k].anchor, fm, cases[k].r);
            qt_quant q = {.format = fm,
                          .rounding = cases[k].r,
                          .weights_via = MX_FP32,
                          .weights_ready = true,
                          .activations = true,
                          .head = true};
            double loss = NAN;
            assert_int_equal(qt_evaluator_loss(&e, &q, &loss, err, sizeof err), 0);
            assert_same_loss(rows[i].loss, loss, "anchor row vs weights set by hand", fm);
            if (fm != MX_FP32)
                assert_same_loss(rows[i].loss, direct[i].loss, "anchor row vs weights_via", fm);
        }
        /* The rows differ from each other (the formats really were applied), and from float. */
        assert_true(rows[9].loss != rows[0].loss); /* mxint2 vs dequantized anchor */
        assert_true(direct[0].loss != rows[0].loss);

        /* A converted file evaluates at its own format only; others are skipped with a note. */
        qt_anchor_ckpt low;
        assert_int_equal(qt_anchor_convert(&r, MX_INT4, &low, err, sizeof err), 0);
        qt_eval_row two[3] = {{.format = MX_FP32}, {.format = MX_INT4}, {.format = MX_INT2}};
        assert_int_equal(
            qt_eval_anchor_rows(&e, &low, "low.h5", true, two, 3, NULL, "t", err, sizeof err), 0);
        assert_false(isnan(two[0].loss));
        assert_false(isnan(two[1].loss));
        assert_true(isnan(two[2].loss));
        assert_has(two[2].note, "already converted");
        if (cases[k].anchor == MX_INT8)
            assert_same_loss(two[1].loss, rows[7].loss, "converted mxint4 vs anchor row", MX_INT4);

        qt_anchor_free(&low);
        qt_anchor_free(&r);
        qt_anchor_free(&a);
        qt_evaluator_close(&e);
        qt_evaluator_close(&e); /* idempotent */
        qt_model_free(m);
        qt_config_free(&c);
    }
}

/* An anchor made from a training checkpoint equals the one made from the model it holds. */
static void test_anchor_from_train_checkpoint(void **state) {
    fx *f = *state;
    qt_config c;
    small_config(&c, true, true);
    c.quant.rounding = QT_ROUND_NEAREST;
    qt_model *m = make_model(&c, 4);
    char *text = qt_config_to_ini(&c);
    qt_ckpt_tensor *params = calloc(m->n_params, sizeof *params);
    for (size_t i = 0; i < m->n_params; i++) {
        qt_ckpt_tensor *t = &params[i];
        snprintf(t->name, sizeof t->name, "%s", m->params[i].name);
        t->dtype = QT_CK_F32;
        t->ndim = m->params[i].t.ndim;
        for (int d = 0; d < t->ndim; d++)
            t->shape[d] = m->params[i].t.shape[d];
        t->data = m->params[i].t.data;
    }
    qt_ckpt ck = {.kind = QT_CKPT_TRAIN,
                  .step = 9,
                  .config_text = text,
                  .model_hash = qt_config_model_hash(&c),
                  .params = params,
                  .n_params = m->n_params};
    qt_anchor_ckpt a, b;
    char err[512] = "";
    assert_int_equal(qt_anchor_from_train(&a, &ck, "t.h5", MX_FP8_E5M2, err, sizeof err), 0);
    assert_int_equal(qt_anchor_from_model(&b, m, true, MX_FP8_E5M2, MX_ROUND_NEAREST, text, 9,
                                          ck.model_hash, err, sizeof err),
                     0);
    assert_int_equal(a.rounding, MX_ROUND_NEAREST);
    assert_int_equal(a.n, b.n);
    assert_true(qt_anchor_head_quantized(&a, m)); /* tied: wte, per quant.quantize_head */
    for (size_t i = 0; i < a.n; i++) {
        assert_string_equal(a.t[i].name, b.t[i].name);
        assert_int_equal(a.t[i].quantized, b.t[i].quantized);
        size_t n = (size_t)a.t[i].shape[0] * (size_t)(a.t[i].ndim == 2 ? a.t[i].shape[1] : 1);
        if (a.t[i].quantized)
            assert_memory_equal(a.t[i].codes, b.t[i].codes, n);
        else
            assert_memory_equal(a.t[i].data, b.t[i].data, n * sizeof(float));
    }
    qt_anchor_free(&b);
    qt_anchor_free(&a);

    ck.model_hash ^= 1;
    assert_int_equal(qt_anchor_from_train(&a, &ck, "t.h5", MX_INT8, err, sizeof err), -1);
    assert_has(err, "t.h5: model_hash");
    ck.model_hash ^= 1;
    assert_int_equal(qt_anchor_from_train(&a, &ck, "t.h5", MX_INT4, err, sizeof err), -1);
    assert_has(err, "mxint4 is not an anchor format");
    ck.kind = QT_CKPT_ANCHOR;
    assert_int_equal(qt_anchor_from_train(&a, &ck, "t.h5", MX_INT8, err, sizeof err), -1);
    assert_has(err, "t.h5: is an anchor, not a training checkpoint");
    ck.kind = QT_CKPT_TRAIN;
    snprintf(params[3].name, sizeof params[3].name, "renamed");
    assert_int_equal(qt_anchor_from_train(&a, &ck, "t.h5", MX_INT8, err, sizeof err), -1);
    assert_has(err, "t.h5: /params/");
    assert_has(err, "is missing");
    assert_null(a.t);
    (void)f;
    free(params);
    free(text);
    qt_model_free(m);
    qt_config_free(&c);
}

/* ---- refusals ---- */

static void test_conversion_refusals(void **state) {
    (void)state;
    qt_config c;
    small_config(&c, false, false);
    qt_model *m = make_model(&c, 6);
    qt_anchor_ckpt a, low, out;
    char err[512] = "", why[256] = "";
    assert_int_equal(
        qt_anchor_from_model(&a, m, false, MX_INT4, MX_ROUND_EVEN, NULL, 0, 0, err, sizeof err),
        -1);
    assert_has(err, "mxint4 is not an anchor format");
    assert_null(a.t);
    assert_int_equal(
        qt_anchor_from_model(&a, m, false, MX_INT8, MX_ROUND_EVEN, NULL, 0, 0, err, sizeof err), 0);
    assert_int_equal(qt_anchor_check_convert(&a, MX_FP32, why, sizeof why), -1);
    assert_has(why, "fp32 (32 bits) is above mxint8 (8 bits)");
    for (int d = MX_INT8; d < MX_FORMAT_COUNT; d++) /* 8-bit anchors reach every MX format */
        assert_int_equal(qt_anchor_check_convert(&a, (mx_format)d, why, sizeof why), 0);
    assert_int_equal(qt_anchor_convert(&a, MX_FP32, &out, err, sizeof err), -1);
    assert_has(err, "cannot convert to fp32");
    assert_null(out.t);
    assert_int_equal(qt_anchor_convert(&a, MX_INT4, &low, err, sizeof err), 0);
    assert_int_equal(low.source, MX_INT8);
    assert_int_equal(qt_anchor_check_convert(&low, MX_INT8, why, sizeof why), -1);
    assert_has(why, "mxint8 (8 bits) is above mxint4 (4 bits)");
    assert_int_equal(qt_anchor_check_convert(&low, MX_FP6_E2M3, why, sizeof why), -1);
    assert_has(why, "above");
    assert_int_equal(qt_anchor_check_convert(&low, MX_INT2, why, sizeof why), -1);
    assert_has(why, "already converted (mxint8 -> mxint4)");
    assert_int_equal(qt_anchor_check_convert(&low, MX_INT4, why, sizeof why), 0); /* identity */
    assert_int_equal(qt_anchor_load_model(&low, m, MX_INT2, "low.h5", err, sizeof err), -1);
    assert_has(err, "low.h5: cannot evaluate at mxint2");

    /* A model of another shape is named tensor by tensor. */
    qt_config c2;
    small_config(&c2, false, false);
    c2.model.d_model = 64;
    char e2[256];
    qt_model *m2 = qt_model_create(&c2, e2, sizeof e2);
    assert_int_equal(qt_anchor_load_model(&a, m2, MX_INT8, "a.h5", err, sizeof err), -1);
    assert_has(err, "a.h5: /params/wte has shape [256, 48], the model needs [256, 64]");
    qt_model_free(m2);
    qt_config_free(&c2);

    qt_anchor_free(&low);
    qt_anchor_free(&a);
    qt_model_free(m);
    qt_config_free(&c);
}

/* One valid quantized tensor "x" [3, 40] in mxint4 plus a float "b"; mutate() breaks it. */
typedef struct tiny_anchor {
    qt_ckpt ck;
    qt_ckpt_tensor p[4];
    qt_ckpt_attr at[6];
    uint8_t el[60], sc[6];
    float b[2];
} tiny_anchor;

static void tiny_init(tiny_anchor *t) {
    memset(t, 0, sizeof *t);
    const int64_t shape[2] = {3, 40};
    t->p[0] =
        (qt_ckpt_tensor){.name = "b", .dtype = QT_CK_F32, .ndim = 1, .shape = {2}, .data = t->b};
    t->p[1] = (qt_ckpt_tensor){
        .name = "x/elements", .dtype = QT_CK_U8, .ndim = 1, .shape = {60}, .data = t->el};
    t->p[2] = (qt_ckpt_tensor){
        .name = "x/scales", .dtype = QT_CK_U8, .ndim = 2, .shape = {3, 2}, .data = t->sc};
    qt_ckpt_attr_str(&t->at[0], "", "format", "mxint4");
    qt_ckpt_attr_str(&t->at[1], "", "rounding", "even");
    qt_ckpt_attr_str(&t->at[2], "x", "format", "mxint4");
    qt_ckpt_attr_ints(&t->at[3], "x", "shape", shape, 2);
    qt_ckpt_attr_str(&t->at[4], "x", "rounding", "even");
    t->ck = (qt_ckpt){
        .kind = QT_CKPT_ANCHOR, .params = t->p, .n_params = 3, .attrs = t->at, .n_attrs = 5};
}

static void test_broken_anchors_are_refused(void **state) {
    fx *f = *state;
    char err[512] = "";
    qt_anchor_ckpt a;
    tiny_anchor t;
    tiny_init(&t);
    assert_int_equal(qt_ckpt_write(f->path, &t.ck, err, sizeof err), 0);
    assert_int_equal(qt_anchor_read(f->path, &a, err, sizeof err), 0);
    assert_int_equal(a.format, MX_INT4);
    assert_int_equal(a.n, 2);
    qt_anchor_free(&a);

    static const struct {
        int what;
        const char *msg;
    } cases[] = {
        {0, "is a 'train' checkpoint, not an anchor"},
        {1, "missing attribute 'format' of /"},
        {2, "attribute 'format' of / is 'fp32', not an MX format"},
        {3, "/params/x/elements must be uint8 [60]"},
        {4, "/params/x is mxint8/even but the file is mxint4/even"},
        {5, "attribute 'shape' of /params/x is missing"},
        {6, "/params/x/scales is missing"},
        {7, "/params/x/scales must be uint8 [3, 2]"},
        {8, "/params/y is uint8; an anchor holds float32 tensors and uint8"},
        {9, "attribute 'rounding' of / is invalid"},
        {10, "/params/x/scales has no elements beside it"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tiny_init(&t);
        switch (cases[i].what) {
        case 0:
            t.ck.kind = QT_CKPT_TRAIN;
            t.ck.n_params = 1;
            t.ck.n_attrs = 0;
            break;
        case 1:
            t.at[0] = t.at[4];
            t.ck.n_attrs = 4;
            break;
        case 2:
            qt_ckpt_attr_str(&t.at[0], "", "format", "fp32");
            break;
        case 3:
            t.p[1].shape[0] = 59;
            break;
        case 4:
            qt_ckpt_attr_str(&t.at[2], "x", "format", "mxint8");
            break;
        case 5:
            t.at[3] = t.at[4];
            t.ck.n_attrs = 4;
            break;
        case 6:
            t.ck.n_params = 2;
            break;
        case 7:
            t.p[2].shape[1] = 1;
            break;
        case 8:
            t.p[3] = (qt_ckpt_tensor){
                .name = "y", .dtype = QT_CK_U8, .ndim = 1, .shape = {2}, .data = t.sc};
            t.ck.n_params = 4;
            break;
        case 9:
            qt_ckpt_attr_str(&t.at[1], "", "rounding", "down");
            break;
        case 10:
            t.p[1] = t.p[2];
            t.ck.n_params = 2;
            t.ck.n_attrs = 2;
            break;
        }
        assert_int_equal(qt_ckpt_write(f->path, &t.ck, err, sizeof err), 0);
        err[0] = '\0';
        assert_int_equal(qt_anchor_read(f->path, &a, err, sizeof err), -1);
        assert_has(err, f->path);
        assert_has(err, cases[i].msg);
        assert_null(a.t);
    }
}

static void test_format_lists_and_csv(void **state) {
    fx *f = *state;
    mx_format v[16];
    char err[512] = "";
    assert_int_equal(qt_eval_parse_formats("all", v, 16, err, sizeof err), 10);
    assert_int_equal(v[0], MX_FP32);
    assert_int_equal(v[9], MX_INT2);
    assert_int_equal(qt_eval_parse_formats(" mxint4 , mxfp4_e2m1", v, 16, err, sizeof err), 3);
    assert_int_equal(v[0], MX_FP32);
    assert_int_equal(v[1], MX_INT4);
    assert_int_equal(v[2], MX_FP4_E2M1);
    assert_int_equal(qt_eval_parse_formats("fp32,mxint8", v, 16, err, sizeof err), 2);
    assert_int_equal(qt_eval_parse_formats("mxint3", v, 16, err, sizeof err), -1);
    assert_has(err, "--formats: unknown format 'mxint3'");
    assert_int_equal(qt_eval_parse_formats("mxint4,fp32,mxint4", v, 16, err, sizeof err), -1);
    assert_has(err, "'mxint4' listed twice");
    assert_int_equal(qt_eval_parse_formats("mxint4,", v, 16, err, sizeof err), -1);
    assert_has(err, "unknown format ''");

    qt_eval_row rows[3] = {{.format = MX_FP32, .loss = 2.0},
                           {.format = MX_FP4_E2M1, .loss = 2.5},
                           {.format = MX_INT2, .loss = NAN, .note = "no, not this one"}};
    char path[256];
    snprintf(path, sizeof path, "%s/t.csv", f->dir);
    assert_int_equal(qt_eval_write_csv(path, rows, 3, err, sizeof err), 0);
    FILE *fp = fopen(path, "r");
    char buf[512] = "";
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    assert_string_equal(buf, "format,bits_per_element,val_loss,perplexity,delta_vs_fp32,note\n"
                             "fp32,32.00,2.000000,7.389056,0.000000,\n"
                             "mxfp4_e2m1,4.25,2.500000,12.182494,0.500000,\n"
                             "mxint2,2.25,,,,\"no, not this one\"\n");
    snprintf(path, sizeof path, "%s/missing/t.csv", f->dir);
    assert_int_equal(qt_eval_write_csv(path, rows, 3, err, sizeof err), -1);
    assert_has(err, "missing/t.csv");
}

int qtt_run_anchor(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_ckpt_attrs_round_trip),
        T(test_checksum_covers_attributes),
        T(test_anchor_round_trip),
        T(test_convert_equals_slice_and_scale),
        T(test_eval_from_anchor_is_bit_identical),
        T(test_anchor_from_train_checkpoint),
        T(test_conversion_refusals),
        T(test_broken_anchors_are_refused),
        T(test_format_lists_and_csv),
    };
#undef T
    return cmocka_run_group_tests_name("anchor", tests, NULL, NULL);
}
