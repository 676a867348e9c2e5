/* test_anchor.c — anchor checkpoint files: the extra attributes of the checkpoint layer (round
 * trip, validation, checksum coverage), the anchor layout byte for byte against mx_quantize +
 * mx_pack, and every malformed anchor refused on reading. Conversions are in
 * test_anchor_convert.c, evaluation in test_anchor_eval.c; the small model they share is in
 * main.c. Each test works in its own mkdtemp directory. */
#define _POSIX_C_SOURCE 200809L

#include "qttest.h"

#include "train/io/anchor.h"
#include "train/io/ckpt_internal.h" /* qt_ck_frame_seal: reseal a file edited through HDF5 */

#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The shared fixture (main.c), under the name the tests use. */
typedef qtt_tmpdir fx;

static int setup(void **state) { return qtt_tmpdir_setup(state, "qat_anchor", "anchor.h5", false); }

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

static void test_checksum_covers_attributes(void **state) {
    fx *f = *state;
    qt_config c;
    qtt_small_config(&c, false, true);
    qt_model *m = qtt_make_model(&c, 1);
    qt_anchor_ckpt a, r;
    char err[512] = "";
    qtt_write_model_anchor(f->path, m, true, MX_INT8, MX_ROUND_EVEN, &a);
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
            assert_memory_equal(t->data, p->t.data, qtt_numel(&p->t) * sizeof(float));
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
        qtt_small_config(&c, cases[k].tied, cases[k].head);
        qt_model *m = qtt_make_model(&c, 10 + k);
        qt_anchor_ckpt a, r;
        qtt_write_model_anchor(f->path, m, cases[k].head, cases[k].f, cases[k].r, &a);
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
            const qt_anchor_tensor *x = &a.t[i], *y = qtt_find_tensor(&r, x->name);
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

/* ---- refusals ---- */

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

int qtt_run_anchor(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, qtt_tmpdir_teardown)
    const struct CMUnitTest tests[] = {
        T(test_ckpt_attrs_round_trip),
        T(test_checksum_covers_attributes),
        T(test_anchor_round_trip),
        T(test_broken_anchors_are_refused),
    };
#undef T
    return cmocka_run_group_tests_name("anchor", tests, NULL, NULL);
}
