/* test_ckpt.c — HDF5 checkpoints: round trip of every field, damage detection, atomic replacement,
 * choosing the newest good checkpoint, rotation. Each test works in its own mkdtemp directory. */
#define _POSIX_C_SOURCE 200809L

#include "qttest.h"

#include "train/io/ckpt.h"
#include "train/io/ckpt_internal.h" /* qt_ck_frame_seal: to reach the checks behind the header */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- fixture: a fresh directory per test ---- */

typedef struct fx {
    char dir[256];
    char path[512];
    ssize_t open_ids; /* open HDF5 files and objects before the test; none may stay open */
} fx;

/* Files, groups, datasets, attributes and named types. (HDF5 1.10 has no public count of open
 * dataspaces, types or property lists: H5Inmembers refuses library types.) */
static ssize_t open_ids(void) { return H5Fget_obj_count((hid_t)H5F_OBJ_ALL, H5F_OBJ_ALL); }

static void rm_rf(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *de;
        while (d && (de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            char sub[1024];
            snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
            rm_rf(sub);
        }
        if (d)
            closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/qat_ckpt_XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/step_0000042.h5", f->dir);
    f->open_ids = open_ids();
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    ssize_t now = open_ids();
    int leaked = now != f->open_ids;
    if (leaked)
        print_error("HDF5 files/objects left open: %zd before the test, %zd after\n", f->open_ids,
                    now);
    rm_rf(f->dir);
    free(f);
    return leaked ? -1 : 0;
}

/* ---- a sample checkpoint owned by the test ---- */

enum { NP = 6, NO = 4, NR = 5 };

typedef struct sample {
    qt_ckpt ck;
    qt_ckpt_tensor params[NP], optim[NO];
    qt_ckpt_rng rngs[NR];
    char *config;
} sample;

static void set_tensor(qt_ckpt_tensor *t, const char *name, qt_ck_dtype dt, int ndim,
                       const int64_t *shape, uint64_t seed) {
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = dt;
    t->ndim = ndim;
    size_t n = 1;
    for (int d = 0; d < ndim; d++) {
        t->shape[d] = shape[d];
        n *= (size_t)shape[d];
    }
    if (dt == QT_CK_F32) {
        float *x = malloc(n * sizeof *x);
        for (size_t i = 0; i < n; i++)
            x[i] = (float)tu_uniform(&seed, -2, 2);
        t->data = x;
    } else {
        uint8_t *x = malloc(n);
        for (size_t i = 0; i < n; i++)
            x[i] = (uint8_t)(tu_uniform(&seed, 0, 256));
        t->data = x;
    }
}

static float bits_to_float(uint32_t b) {
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

/* Every field set to a value that a wrong type or a lost bit would change. */
static void sample_init(sample *s, int64_t step) {
    memset(s, 0, sizeof *s);
    const int64_t wte[2] = {16, 8}, wq[2] = {8, 8}, ln[1] = {8}, el[2] = {8, 32}, sc[2] = {8, 1},
                  k4[4] = {2, 3, 4, 5};
    set_tensor(&s->params[0], "wte", QT_CK_F32, 2, wte, 1);
    set_tensor(&s->params[1], "h.0.attn.wq", QT_CK_F32, 2, wq, 2);
    set_tensor(&s->params[2], "h.0.ln1.weight", QT_CK_F32, 1, ln, 3);
    set_tensor(&s->params[3], "h.0.mlp.up/elements", QT_CK_U8, 2, el, 4);
    set_tensor(&s->params[4], "h.0.mlp.up/scales", QT_CK_U8, 2, sc, 5);
    set_tensor(&s->params[5], "conv.k", QT_CK_F32, 4, k4, 6);
    /* Values that survive only a byte-exact path: signed zero, infinities, a NaN payload,
     * the smallest subnormal, the largest float. */
    float *w = s->params[2].data;
    w[0] = -0.0f;
    w[1] = bits_to_float(0x7f800000u);
    w[2] = bits_to_float(0xff800000u);
    w[3] = bits_to_float(0x7fc00123u);
    w[4] = bits_to_float(0x00000001u);
    w[5] = FLT_MAX;
    set_tensor(&s->optim[0], "wte/m", QT_CK_F32, 2, wte, 11);
    set_tensor(&s->optim[1], "wte/v", QT_CK_F32, 2, wte, 12);
    set_tensor(&s->optim[2], "h.0.attn.wq/m", QT_CK_F32, 2, wq, 13);
    set_tensor(&s->optim[3], "h.0.attn.wq/v", QT_CK_F32, 2, wq, 14);
    static const char *const rng_names[NR] = {"init", "data", "format", "dropout", "sample"};
    for (int i = 0; i < NR; i++) {
        snprintf(s->rngs[i].name, sizeof s->rngs[i].name, "%s", rng_names[i]);
        for (int j = 0; j < 4; j++)
            s->rngs[i].s[j] = 0x8000000000000000ull + (uint64_t)(i * 4 + j) * 0x0101010101ull;
    }
    /* Longer than the 64 KiB an HDF5 attribute can hold in the oldest format. */
    const char *head = "[run]\nseed = 1234\nout_dir = runs/x\n\n[optim]\nlr = 3e-4\n";
    size_t n = strlen(head) + 70000;
    s->config = malloc(n + 1);
    strcpy(s->config, head);
    for (size_t i = strlen(head); i < n; i++)
        s->config[i] = (i % 64 == 63) ? '\n' : (i % 64 == 0 ? ';' : 'a' + (char)(i % 26));
    s->config[n] = 0;

    s->ck.kind = QT_CKPT_TRAIN;
    s->ck.step = step;
    s->ck.config_text = s->config;
    s->ck.model_hash = 0xFEDCBA9876543210ull;
    s->ck.params = s->params;
    s->ck.n_params = NP;
    s->ck.optim = s->optim;
    s->ck.n_optim = NO;
    s->ck.optim_step = 12345;
    s->ck.optim_lr = 3e-4;
    s->ck.rngs = s->rngs;
    s->ck.n_rngs = NR;
    s->ck.data_epoch = 3;
    s->ck.data_cursor = 987654321012;
}

static void sample_free(sample *s) {
    for (int i = 0; i < NP; i++)
        free(s->params[i].data);
    for (int i = 0; i < NO; i++)
        free(s->optim[i].data);
    free(s->config);
}

/* ---- file helpers ---- */

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    *n = fread(b, 1, (size_t)len, fp);
    fclose(fp);
    return b;
}

static void spit(const char *path, const void *b, size_t n) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(b, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

/* Offset of needle in hay, or -1. */
static long find_bytes(const unsigned char *hay, size_t n, const void *needle, size_t m) {
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(hay + i, needle, m) == 0)
            return (long)i;
    return -1;
}

/* Flips one byte in the middle of tensor t's payload as stored in the file; with reseal, also
 * recomputes the raw-bytes header so that the damage reaches HDF5 and the dataset checks. */
static void flip_payload_byte(const char *path, const qt_ckpt_tensor *t, size_t nbytes,
                              int reseal) {
    size_t n = 0;
    unsigned char *b = slurp(path, &n);
    assert_non_null(b);
    long off = find_bytes(b, n, t->data, 64);
    assert_true(off >= 0);
    b[(size_t)off + nbytes / 2] ^= 0x5a;
    if (reseal)
        qt_ck_frame_seal(b, n);
    spit(path, b, n);
    free(b);
}

static void reseal(const char *path) {
    size_t n = 0;
    unsigned char *b = slurp(path, &n);
    assert_non_null(b);
    qt_ck_frame_seal(b, n);
    spit(path, b, n);
    free(b);
}

static int exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL)
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    if (d)
        closedir(d);
    return n;
}

#define assert_has(str, sub)                                                                       \
    do {                                                                                           \
        if (!strstr((str), (sub))) {                                                               \
            print_error("message '%s' lacks '%s'\n", (str), (sub));                                \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

static size_t tensor_bytes(const qt_ckpt_tensor *t) {
    size_t n = t->dtype == QT_CK_F32 ? 4 : 1;
    for (int d = 0; d < t->ndim; d++)
        n *= (size_t)t->shape[d];
    return n;
}

static void assert_same_tensors(const qt_ckpt_tensor *want, size_t nw, const qt_ckpt_tensor *got,
                                size_t ng) {
    assert_int_equal(ng, nw);
    for (size_t i = 0; i < nw; i++) {
        const qt_ckpt_tensor *g = qt_ckpt_find(got, ng, want[i].name);
        if (!g) {
            print_error("tensor %s missing after read\n", want[i].name);
            fail();
        }
        assert_int_equal(g->dtype, want[i].dtype);
        assert_int_equal(g->ndim, want[i].ndim);
        for (int d = 0; d < want[i].ndim; d++)
            assert_int_equal(g->shape[d], want[i].shape[d]);
        assert_memory_equal(g->data, want[i].data, tensor_bytes(&want[i]));
    }
    for (size_t i = 1; i < ng; i++) /* documented: sorted bytewise by name */
        assert_true(strcmp(got[i - 1].name, got[i].name) < 0);
}

/* ---- round trip ---- */

static void test_round_trip_every_field(void **state) {
    fx *f = *state;
    sample s;
    sample_init(&s, (INT64_C(1) << 40) + 7);
    char err[512] = "";
    assert_int_equal(qt_ckpt_write(f->path, &s.ck, err, sizeof err), 0);
    assert_int_equal(count_entries(f->dir), 1); /* no .tmp left behind */

    qt_ckpt r;
    if (qt_ckpt_read(f->path, &r, err, sizeof err) != 0) {
        print_error("%s\n", err);
        fail();
    }
    assert_int_equal(r.kind, QT_CKPT_TRAIN);
    assert_true(r.step == (INT64_C(1) << 40) + 7);
    assert_string_equal(r.config_text, s.config);
    assert_true(r.model_hash == 0xFEDCBA9876543210ull);
    assert_true(r.optim_step == 12345);
    assert_memory_equal(&r.optim_lr, &s.ck.optim_lr, sizeof r.optim_lr);
    assert_true(r.data_epoch == 3);
    assert_true(r.data_cursor == 987654321012);
    assert_same_tensors(s.params, NP, r.params, r.n_params);
    assert_same_tensors(s.optim, NO, r.optim, r.n_optim);
    assert_int_equal(r.n_rngs, NR);
    for (int i = 0; i < NR; i++) {
        const qt_ckpt_rng *g = NULL;
        for (size_t j = 0; j < r.n_rngs; j++)
            if (strcmp(r.rngs[j].name, s.rngs[i].name) == 0)
                g = &r.rngs[j];
        assert_non_null(g);
        assert_memory_equal(g->s, s.rngs[i].s, sizeof g->s);
    }
    const qt_ckpt_tensor *ln = qt_ckpt_find(r.params, r.n_params, "h.0.ln1.weight");
    uint32_t nan_bits;
    memcpy(&nan_bits, &((const float *)ln->data)[3], 4);
    assert_int_equal(nan_bits, 0x7fc00123u);
    assert_null(qt_ckpt_find(r.params, r.n_params, "h.0.mlp.up")); /* a group, not a tensor */

    qt_ckpt_free(&r);
    assert_null(r.params);
    assert_int_equal(r.n_params, 0);
    qt_ckpt_free(&r); /* idempotent */
    qt_ckpt_free(NULL);
    sample_free(&s);
}

static void test_round_trip_anchor_without_optim(void **state) {
    fx *f = *state;
    sample s;
    sample_init(&s, 7);
    s.ck.kind = QT_CKPT_ANCHOR;
    s.ck.n_optim = 0;
    s.ck.n_rngs = 0;
    s.ck.config_text = NULL; /* written as "" */
    char err[512] = "";
    assert_int_equal(qt_ckpt_write(f->path, &s.ck, err, sizeof err), 0);
    qt_ckpt r;
    assert_int_equal(qt_ckpt_read(f->path, &r, err, sizeof err), 0);
    assert_int_equal(r.kind, QT_CKPT_ANCHOR);
    assert_string_equal(r.config_text, "");
    assert_int_equal(r.n_optim, 0);
    assert_int_equal(r.n_rngs, 0);
    assert_same_tensors(s.params, NP, r.params, r.n_params);
    qt_ckpt_free(&r);
    sample_free(&s);
}

static void test_overwrite_replaces(void **state) {
    fx *f = *state;
    sample s;
    sample_init(&s, 1);
    char err[512] = "";
    assert_int_equal(qt_ckpt_write(f->path, &s.ck, err, sizeof err), 0);
    s.ck.step = 2;
    ((float *)s.params[0].data)[5] = 42.0f;
    assert_int_equal(qt_ckpt_write(f->path, &s.ck, err, sizeof err), 0);
    qt_ckpt r;
    assert_int_equal(qt_ckpt_read(f->path, &r, err, sizeof err), 0);
    assert_true(r.step == 2);
    assert_true(((const float *)qt_ckpt_find(r.params, r.n_params, "wte")->data)[5] == 42.0f);
    qt_ckpt_free(&r);
    sample_free(&s);
}

static void test_write_rejects_bad_input(void **state) {
    fx *f = *state;
    sample s;
    sample_init(&s, 1);
    char err[512] = "";

    s.params[1].ndim = 5;
    assert_int_equal(qt_ckpt_write(f->path, &s.ck, err, sizeof err), -1);
    assert_has(err, f->path);
    assert_has(err, "/params/h.0.attn.wq has ndim 5");
    s.params[1].ndim = 2;

    snprintf(s.params[1].name, sizeof s.params[1].name, "wte");
    assert_int_equal(qt_ckpt_write(f->path, &s.ck, err, sizeof err), -1);
    assert_has(err, "duplicate tensor /params/wte");

    snprintf(s.params[1].name, sizeof s.params[1].name, "h.0//wq");
    assert_int_equal(qt_ckpt_write(f->path, &s.ck, err, sizeof err), -1);
    assert_has(err, "bad tensor name 'h.0//wq'");

    snprintf(s.params[1].name, sizeof s.params[1].name, "h.0.attn.wq");
    s.params[1].shape[0] = 0;
    assert_int_equal(qt_ckpt_write(f->path, &s.ck, err, sizeof err), -1);
    assert_has(err, "dimension < 1");
    s.params[1].shape[0] = 8;

    /* "wte" is a dataset, so "wte/m" cannot also live in /params: HDF5 refuses, we name it. */
    snprintf(s.params[1].name, sizeof s.params[1].name, "wte/m");
    assert_int_equal(qt_ckpt_write(f->path, &s.ck, err, sizeof err), -1);
    assert_has(err, "cannot write dataset /params/wte/m");

    assert_int_equal(count_entries(f->dir), 0);
    sample_free(&s);
}

/* ---- damage ---- */

static void test_flipped_payload_byte_is_detected(void **state) {
    fx *f = *state;
    sample s;
    sample_init(&s, 1);
    char err[512] = "";
    assert_int_equal(qt_ckpt_write(f->path, &s.ck, err, sizeof err), 0);
    size_t n0 = 0;
    unsigned char *good = slurp(f->path, &n0);

    /* The raw-bytes header catches it before HDF5 reads anything... */
    flip_payload_byte(f->path, &s.params[0], tensor_bytes(&s.params[0]), 0);
    qt_ckpt r;
    assert_int_equal(qt_ckpt_read(f->path, &r, err, sizeof err), -1);
    assert_has(err, f->path);
    assert_has(err, "checksum mismatch: file is corrupted (its bytes changed");
    assert_null(r.params); /* *ck is left empty */
    assert_int_equal(r.n_params, 0);

    /* ...and behind it, Fletcher32 names the dataset. */
    spit(f->path, good, n0);
    flip_payload_byte(f->path, &s.params[0], tensor_bytes(&s.params[0]), 1);
    assert_int_equal(qt_ckpt_read(f->path, &r, err, sizeof err), -1);
    assert_has(err, f->path);
    assert_has(err, "/params/wte is corrupted (Fletcher32 checksum failed)");
    assert_null(r.params);
    free(good);
    sample_free(&s);
}

/* A dataset rewritten through HDF5 carries a valid Fletcher32 sum; the file checksum still
 * catches it, and it covers attributes too. */
static void test_file_checksum_catches_valid_hdf5_edits(void **state) {
    fx *f = *state;
    sample s;
    sample_init(&s, 1);
    char err[512] = "";
    assert_int_equal(qt_ckpt_write(f->path, &s.ck, err, sizeof err), 0);

    hid_t fid = H5Fopen(f->path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(fid >= 0);
    hid_t ds = H5Dopen2(fid, "/optim/wte/v", H5P_DEFAULT);
    float *v = s.optim[1].data;
    v[3] += 1.0f;
    assert_true(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    v[3] -= 1.0f;
    H5Dclose(ds);
    H5Fclose(fid);
    qt_ckpt r;
    assert_int_equal(qt_ckpt_read(f->path, &r, err, sizeof err), -1);
    assert_has(err, f->path);
    assert_has(err, "checksum mismatch: file is corrupted (its bytes changed");
    reseal(f->path); /* as if the header had been recomputed too */
    assert_int_equal(qt_ckpt_read(f->path, &r, err, sizeof err), -1);
    assert_has(err, f->path);
    assert_has(err, "checksum mismatch: file is corrupted (datasets or attributes differ");

    assert_int_equal(qt_ckpt_write(f->path, &s.ck, err, sizeof err), 0);
    fid = H5Fopen(f->path, H5F_ACC_RDWR, H5P_DEFAULT);
    /* (H5Aopen_by_name + H5Awrite fails in HDF5 1.10.8: open the group first.) */
    hid_t g = H5Gopen2(fid, "data", H5P_DEFAULT);
    hid_t a = H5Aopen(g, "cursor", H5P_DEFAULT);
    int64_t cursor = 5;
    assert_true(H5Awrite(a, H5T_NATIVE_INT64, &cursor) >= 0);
    H5Aclose(a);
    H5Gclose(g);
    H5Fclose(fid);
    reseal(f->path);
    assert_int_equal(qt_ckpt_read(f->path, &r, err, sizeof err), -1);
    assert_has(err, "checksum mismatch: file is corrupted (datasets or attributes differ");
    sample_free(&s);
}

static void test_truncated_file(void **state) {
    fx *f = *state;
    sample s;
    sample_init(&s, 1);
    char err[512] = "";
    assert_int_equal(qt_ckpt_write(f->path, &s.ck, err, sizeof err), 0);
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(truncate(f->path, st.st_size / 2), 0);
    qt_ckpt r;
    assert_int_equal(qt_ckpt_read(f->path, &r, err, sizeof err), -1);
    assert_has(err, f->path);
    assert_has(err, "truncated");
    sample_free(&s);
}

static void test_damaged_header(void **state) {
    fx *f = *state;
    sample s;
    sample_init(&s, 1);
    char err[512] = "";
    qt_ckpt r;
    assert_int_equal(qt_ckpt_write(f->path, &s.ck, err, sizeof err), 0);
    size_t n = 0;
    unsigned char *b = slurp(f->path, &n);
    assert_memory_equal(b, "qat-ckpt", 8);
    assert_memory_equal(b + 512, "\211HDF\r\n\032\n", 8); /* HDF5 starts after the user block */

    b[0] ^= 1; /* no longer our header, but HDF5 data after a user block: damaged, not foreign */
    spit(f->path, b, n);
    assert_int_equal(qt_ckpt_read(f->path, &r, err, sizeof err), -1);
    assert_has(err, f->path);
    assert_has(err, "checkpoint header is damaged");
    b[0] ^= 1;

    b[8] = 2;
    spit(f->path, b, n);
    assert_int_equal(qt_ckpt_read(f->path, &r, err, sizeof err), -1);
    assert_has(err, "checkpoint header version 2");
    b[8] = 1;

    unsigned char *longer = malloc(n + 3);
    memcpy(longer, b, n);
    memcpy(longer + n, "abc", 3);
    spit(f->path, longer, n + 3);
    assert_int_equal(qt_ckpt_read(f->path, &r, err, sizeof err), -1);
    assert_has(err, "file has extra bytes");
    free(longer);

    spit(f->path, b, 20); /* shorter than the header itself */
    assert_int_equal(qt_ckpt_read(f->path, &r, err, sizeof err), -1);
    assert_has(err, "truncated file");
    free(b);
    sample_free(&s);
}

/* Any single damaged byte anywhere (header, HDF5 metadata, payload, unused space) is rejected
 * before HDF5 parses the file: unguarded, some such bytes crash or hang HDF5 1.10. */
static void test_every_byte_flip_is_rejected(void **state) {
    fx *f = *state;
    float w[64];
    for (int i = 0; i < 64; i++)
        w[i] = 0.25f * (float)i;
    qt_ckpt_tensor t = {.name = "w", .dtype = QT_CK_F32, .ndim = 2, .shape = {8, 8}, .data = w};
    qt_ckpt ck = {.kind = QT_CKPT_ANCHOR, .config_text = "[run]\n", .params = &t, .n_params = 1};
    char err[512] = "";
    assert_int_equal(qt_ckpt_write(f->path, &ck, err, sizeof err), 0);
    size_t n = 0;
    unsigned char *b = slurp(f->path, &n);
    int fd = open(f->path, O_RDWR), tried = 0, accepted = 0;
    assert_true(fd >= 0);
    for (size_t i = 0; i < n; i += i < 1024 ? 1 : 11, tried++) {
        unsigned char bad = b[i] ^ 0x04;
        assert_int_equal(pwrite(fd, &bad, 1, (off_t)i), 1); /* damage in place, then repair */
        qt_ckpt r;
        if (qt_ckpt_read(f->path, &r, err, sizeof err) == 0) {
            print_error("byte %zu of %zu flipped, file still accepted\n", i, n);
            qt_ckpt_free(&r);
            accepted++;
        }
        assert_int_equal(pwrite(fd, &b[i], 1, (off_t)i), 1);
    }
    close(fd);
    assert_int_equal(accepted, 0);
    assert_true(tried > 1000);
    free(b);
}

static void test_not_hdf5_missing_empty_directory(void **state) {
    fx *f = *state;
    char err[512] = "";
    qt_ckpt r;
    const char *text = "[run]\nsteps = 10\nThis is not a checkpoint.\n";
    spit(f->path, text, strlen(text));
    assert_int_equal(qt_ckpt_read(f->path, &r, err, sizeof err), -1);
    assert_has(err, f->path);
    assert_has(err, "not an HDF5 file");

    spit(f->path, "", 0);
    assert_int_equal(qt_ckpt_read(f->path, &r, err, sizeof err), -1);
    assert_has(err, "not an HDF5 file");

    char missing[600];
    snprintf(missing, sizeof missing, "%s/nope.h5", f->dir);
    assert_int_equal(qt_ckpt_read(missing, &r, err, sizeof err), -1);
    assert_has(err, missing);
    assert_has(err, "No such file or directory");

    assert_int_equal(qt_ckpt_read(f->dir, &r, err, sizeof err), -1);
    assert_has(err, "not a regular file");
    assert_int_equal(qt_ckpt_read(f->dir, &r, NULL, 0), -1); /* messages are optional */
}

/* Writes an HDF5 file the way another tool might: fixed-length string attributes, chosen version,
 * optionally without any groups. */
static void write_foreign(const char *path, int version, const char *kind, int with_attrs) {
    hid_t fid = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(fid >= 0);
    if (with_attrs) {
        hid_t sp = H5Screate(H5S_SCALAR);
        hid_t a =
            H5Acreate2(fid, "qat_format_version", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, H5T_NATIVE_INT, &version);
        H5Aclose(a);
        hid_t st = H5Tcopy(H5T_C_S1);
        H5Tset_size(st, strlen(kind));
        a = H5Acreate2(fid, "kind", st, sp, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, st, kind);
        H5Aclose(a);
        H5Tset_size(st, 5);
        a = H5Acreate2(fid, "config", st, sp, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, st, "[run]");
        H5Aclose(a);
        H5Tclose(st);
        int64_t step = 5;
        uint64_t u = 1;
        a = H5Acreate2(fid, "step", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, H5T_NATIVE_INT64, &step);
        H5Aclose(a);
        a = H5Acreate2(fid, "model_hash", H5T_STD_U64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, H5T_NATIVE_UINT64, &u);
        H5Aclose(a);
        a = H5Acreate2(fid, "checksum", H5T_STD_U64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, H5T_NATIVE_UINT64, &u);
        H5Aclose(a);
        H5Sclose(sp);
    }
    H5Fclose(fid);
}

static void test_wrong_version_kind_and_missing_parts(void **state) {
    fx *f = *state;
    char err[512] = "";
    qt_ckpt r;
    write_foreign(f->path, 2, "train", 1);
    assert_int_equal(qt_ckpt_read(f->path, &r, err, sizeof err), -1);
    assert_has(err, f->path);
    assert_has(err, "qat_format_version is 2, but this build supports 1");

    write_foreign(f->path, QT_CKPT_VERSION, "weights", 1);
    assert_int_equal(qt_ckpt_read(f->path, &r, err, sizeof err), -1);
    assert_has(err, "unknown checkpoint kind 'weights'");

    write_foreign(f->path, QT_CKPT_VERSION, "train", 1); /* attributes, but no groups */
    assert_int_equal(qt_ckpt_read(f->path, &r, err, sizeof err), -1);
    assert_has(err, f->path);
    assert_has(err, "missing group /params");

    write_foreign(f->path, QT_CKPT_VERSION, "train", 0); /* a bare HDF5 file */
    assert_int_equal(qt_ckpt_read(f->path, &r, err, sizeof err), -1);
    assert_has(err, "missing attribute 'qat_format_version'");
}

/* Our calls print nothing to stderr, and the caller's HDF5 error handler is restored. */
static void test_hdf5_is_quiet_and_handler_restored(void **state) {
    fx *f = *state;
    char err[512] = "", log[600];
    write_foreign(f->path, 1, "train", 1);
    assert_int_equal(truncate(f->path, 100), 0); /* HDF5 would print a stack trace for this */
    snprintf(log, sizeof log, "%s/stderr.txt", f->dir);

    H5E_auto2_t before_fn = NULL, after_fn = NULL;
    void *before_data = NULL, *after_data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &before_fn, &before_data);
    fflush(stderr);
    int saved = dup(2);
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    close(fd);
    qt_ckpt r;
    int rc = qt_ckpt_read(f->path, &r, err, sizeof err);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    H5Eget_auto2(H5E_DEFAULT, &after_fn, &after_data);

    assert_int_equal(rc, -1);
    assert_has(err, "HDF5: "); /* HDF5's innermost message made it into ours */
    struct stat st;
    assert_int_equal(stat(log, &st), 0);
    assert_int_equal(st.st_size, 0);
    assert_true(before_fn == after_fn && before_data == after_data);
}

/* ---- atomic replacement ---- */

static void test_write_into_missing_directory(void **state) {
    fx *f = *state;
    sample s;
    sample_init(&s, 1);
    char err[512] = "", path[600];
    snprintf(path, sizeof path, "%s/no/such/dir/step_0000001.h5", f->dir);
    assert_int_equal(qt_ckpt_write(path, &s.ck, err, sizeof err), -1);
    assert_has(err, path);
    assert_has(err, "No such file or directory");
    assert_int_equal(count_entries(f->dir), 0);
    sample_free(&s);
}

/* A failed write leaves the previous file byte for byte, and removes only a .tmp it created. */
static void test_failed_write_keeps_old_file(void **state) {
    fx *f = *state;
    sample s;
    sample_init(&s, 10);
    char err[512] = "", tmp[600];
    assert_int_equal(qt_ckpt_write(f->path, &s.ck, err, sizeof err), 0);
    size_t n0 = 0, n1 = 0;
    unsigned char *before = slurp(f->path, &n0);
    s.ck.step = 20;

    snprintf(tmp, sizeof tmp, "%s.tmp", f->path);
    assert_int_equal(mkdir(tmp, 0755), 0); /* open(PATH.tmp) fails: EISDIR */
    assert_int_equal(qt_ckpt_write(f->path, &s.ck, err, sizeof err), -1);
    assert_has(err, f->path);
    assert_has(err, ".tmp");
    assert_has(err, "Is a directory");
    unsigned char *after = slurp(f->path, &n1);
    assert_int_equal(n1, n0);
    assert_memory_equal(after, before, n0);
    free(after);
    assert_int_equal(rmdir(tmp), 0); /* still the directory: not ours to delete */

    /* Disk full: PATH.tmp leads to /dev/full, so every write fails with ENOSPC. */
    if (exists("/dev/full")) {
        assert_int_equal(symlink("/dev/full", tmp), 0);
        assert_int_equal(qt_ckpt_write(f->path, &s.ck, err, sizeof err), -1);
        assert_has(err, f->path);
        assert_has(err, "No space left on device");
        assert_false(exists(tmp));
        after = slurp(f->path, &n1);
        assert_int_equal(n1, n0);
        assert_memory_equal(after, before, n0);
        free(after);
    }
    qt_ckpt r;
    assert_int_equal(qt_ckpt_read(f->path, &r, err, sizeof err), 0);
    assert_true(r.step == 10);
    qt_ckpt_free(&r);
    assert_int_equal(count_entries(f->dir), 1);
    free(before);
    sample_free(&s);
}

/* ---- directories of checkpoints ---- */

static void test_path_kind_find(void **state) {
    (void)state;
    char p[128];
    qt_ckpt_path(p, sizeof p, "run/ckpt", 200);
    assert_string_equal(p, "run/ckpt/step_0000200.h5");
    qt_ckpt_path(p, sizeof p, "d", 12345678);
    assert_string_equal(p, "d/step_12345678.h5");
    assert_string_equal(qt_ckpt_kind_name(QT_CKPT_TRAIN), "train");
    assert_string_equal(qt_ckpt_kind_name(QT_CKPT_ANCHOR), "anchor");
    assert_string_equal(qt_ckpt_kind_name(QT_CKPT_PTQ), "ptq");
    qt_ckpt_tensor t[2] = {{.name = "a"}, {.name = "b/m"}};
    assert_ptr_equal(qt_ckpt_find(t, 2, "b/m"), &t[1]);
    assert_null(qt_ckpt_find(t, 2, "b"));
}

typedef struct warnings {
    int n;
    char first[700], second[700];
} warnings;

static void collect_warning(const char *msg, void *user) {
    warnings *w = user;
    snprintf(w->n == 0 ? w->first : w->second, sizeof w->first, "%s", msg);
    w->n++;
}

static void test_find_latest_skips_damaged(void **state) {
    fx *f = *state;
    char err[512] = "", out[600], p[600];
    warnings w = {0, "", ""};
    assert_int_equal(
        qt_ckpt_find_latest(f->dir, out, sizeof out, collect_warning, &w, err, sizeof err),
        0); /* empty */
    snprintf(p, sizeof p, "%s/absent", f->dir);
    assert_int_equal(qt_ckpt_find_latest(p, out, sizeof out, NULL, NULL, err, sizeof err), 0);

    sample s;
    sample_init(&s, 0);
    for (int64_t step = 100; step <= 300; step += 100) {
        s.ck.step = step;
        qt_ckpt_path(p, sizeof p, f->dir, step);
        assert_int_equal(qt_ckpt_write(p, &s.ck, err, sizeof err), 0);
    }
    qt_ckpt_path(p, sizeof p, f->dir, 300);
    flip_payload_byte(p, &s.params[5], tensor_bytes(&s.params[5]), 0);
    qt_ckpt_path(p, sizeof p, f->dir, 400);
    spit(p, "garbage", 7);
    snprintf(p, sizeof p, "%s/step_0000500.h5.tmp", f->dir); /* not a checkpoint name */
    spit(p, "partial", 7);

    assert_int_equal(
        qt_ckpt_find_latest(f->dir, out, sizeof out, collect_warning, &w, err, sizeof err), 1);
    qt_ckpt_path(p, sizeof p, f->dir, 200);
    assert_string_equal(out, p);
    assert_int_equal(w.n, 2); /* newest first: 400, then 300 */
    assert_has(w.first, "step_0000400.h5");
    assert_has(w.first, "not an HDF5 file");
    assert_has(w.second, "step_0000300.h5");
    assert_has(w.second, "checksum mismatch");

    assert_int_equal(qt_ckpt_find_latest(f->dir, out, 8, NULL, NULL, err, sizeof err), -1);
    assert_has(err, "buffer");
    sample_free(&s);
}

static void touch(const char *dir, const char *name) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    spit(p, "x", 1);
}

static void test_prune_keeps_newest(void **state) {
    fx *f = *state;
    char err[512] = "", p[600];
    const char *names[] = {"step_0000001.h5", "step_0000002.h5",  "step_0000003.h5",
                           "step_0000009.h5", "step_10000000.h5", "step_0000011.h5.tmp",
                           "notes.txt",       "other.tmp"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        touch(f->dir, names[i]);
    snprintf(p, sizeof p, "%s/step_0000005.h5", f->dir);
    assert_int_equal(mkdir(p, 0755), 0); /* a directory with a checkpoint name is left alone */

    assert_int_equal(qt_ckpt_prune(f->dir, 0, err, sizeof err), -1);
    assert_has(err, "keep = 0");
    assert_int_equal(qt_ckpt_prune(f->dir, 2, err, sizeof err), 0);
    assert_int_equal(count_entries(f->dir), 5);
    const char *kept[] = {"step_0000009.h5", "step_10000000.h5", "notes.txt", "other.tmp",
                          "step_0000005.h5"};
    for (size_t i = 0; i < 5; i++) {
        snprintf(p, sizeof p, "%s/%s", f->dir, kept[i]);
        if (!exists(p)) {
            print_error("%s was deleted\n", kept[i]);
            fail();
        }
    }
    assert_int_equal(qt_ckpt_prune(f->dir, 2, err, sizeof err), 0); /* idempotent */
    assert_int_equal(count_entries(f->dir), 5);
    snprintf(p, sizeof p, "%s/absent", f->dir);
    assert_int_equal(qt_ckpt_prune(p, 2, err, sizeof err), 0);
}

int qtt_run_ckpt(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_round_trip_every_field),
        T(test_round_trip_anchor_without_optim),
        T(test_overwrite_replaces),
        T(test_write_rejects_bad_input),
        T(test_flipped_payload_byte_is_detected),
        T(test_file_checksum_catches_valid_hdf5_edits),
        T(test_truncated_file),
        T(test_damaged_header),
        T(test_every_byte_flip_is_rejected),
        T(test_not_hdf5_missing_empty_directory),
        T(test_wrong_version_kind_and_missing_parts),
        T(test_hdf5_is_quiet_and_handler_restored),
        T(test_write_into_missing_directory),
        T(test_failed_write_keeps_old_file),
        T(test_path_kind_find),
        T(test_find_latest_skips_damaged),
        T(test_prune_keeps_newest),
    };
#undef T
    return cmocka_run_group_tests_name("ckpt", tests, NULL, NULL);
}
