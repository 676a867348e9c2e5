/* qttest.c — the helpers that several train/ test files share (declared in qttest.h). */
#define _POSIX_C_SOURCE 200809L

#include "qttest.h"

#include "data/data.h"
#include "train/io/ckpt_internal.h" /* qt_ck_frame_seal */

#include <dirent.h>
#include <float.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- fixture: a fresh directory per test (or per group) ---- */

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

int qtt_tmpdir_setup(void **state, const char *name, const char *file, bool check_hdf5) {
    qtt_tmpdir *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/%s_XXXXXX", name);
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/%s", f->dir, file);
    f->check_hdf5 = check_hdf5;
    f->open_ids = check_hdf5 ? (long)open_ids() : 0;
    *state = f;
    return 0;
}

int qtt_tmpdir_teardown(void **state) {
    qtt_tmpdir *f = *state;
    long now = f->check_hdf5 ? (long)open_ids() : 0;
    int leaked = now != f->open_ids;
    if (leaked)
        print_error("HDF5 files/objects left open: %ld before the test, %ld after\n", f->open_ids,
                    now);
    rm_rf(f->dir);
    free(f);
    return leaked ? -1 : 0;
}

/* ---- file helpers ---- */

unsigned char *qtt_read_bytes(const char *path, size_t *n) {
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

void qtt_write_bytes(const char *path, const void *b, size_t n) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(b, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

int qtt_exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

int qtt_count_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL)
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    if (d)
        closedir(d);
    return n;
}

/* ---- a sample checkpoint owned by the test ---- */

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

void qtt_sample_init(qtt_sample *s, int64_t step) {
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
    static const char *const rng_names[QTT_NR] = {"init", "data", "format", "dropout", "sample"};
    for (int i = 0; i < QTT_NR; i++) {
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
    s->ck.n_params = QTT_NP;
    s->ck.optim = s->optim;
    s->ck.n_optim = QTT_NO;
    s->ck.optim_step = 12345;
    s->ck.optim_lr = 3e-4;
    s->ck.rngs = s->rngs;
    s->ck.n_rngs = QTT_NR;
    s->ck.data_epoch = 3;
    s->ck.data_cursor = 987654321012;
}

void qtt_sample_free(qtt_sample *s) {
    for (int i = 0; i < QTT_NP; i++)
        free(s->params[i].data);
    for (int i = 0; i < QTT_NO; i++)
        free(s->optim[i].data);
    free(s->config);
}

size_t qtt_tensor_bytes(const qt_ckpt_tensor *t) {
    size_t n = t->dtype == QT_CK_F32 ? 4 : 1;
    for (int d = 0; d < t->ndim; d++)
        n *= (size_t)t->shape[d];
    return n;
}

/* Offset of needle in hay, or -1. */
static long find_bytes(const unsigned char *hay, size_t n, const void *needle, size_t m) {
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(hay + i, needle, m) == 0)
            return (long)i;
    return -1;
}

void qtt_flip_payload_byte(const char *path, const qt_ckpt_tensor *t, size_t nbytes, int reseal) {
    size_t n = 0;
    unsigned char *b = qtt_read_bytes(path, &n);
    assert_non_null(b);
    long off = find_bytes(b, n, t->data, 64);
    assert_true(off >= 0);
    b[(size_t)off + nbytes / 2] ^= 0x5a;
    if (reseal)
        qt_ck_frame_seal(b, n);
    qtt_write_bytes(path, b, n);
    free(b);
}

/* ---- a small model with varied block scales ---- */

void qtt_small_config(qt_config *c, bool tied, bool head) {
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

qt_model *qtt_make_model(const qt_config *c, uint64_t seed) {
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

size_t qtt_numel(const ag_tensor *t) { return t->numel; }

const qt_anchor_tensor *qtt_find_tensor(const qt_anchor_ckpt *a, const char *name) {
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->t[i].name, name) == 0)
            return &a->t[i];
    return NULL;
}

void qtt_write_model_anchor(const char *path, const qt_model *m, bool head, mx_format f,
                            mx_rounding r, qt_anchor_ckpt *a) {
    char err[512] = "";
    assert_int_equal(qt_anchor_from_model(a, m, head, f, r, "[run]\nseed = 5\n", 77,
                                          0x1234567890ABCDEFull, err, sizeof err),
                     0);
    assert_int_equal(qt_anchor_write(path, a, err, sizeof err), 0);
}

/* ---- configs ---- */

void qtt_assert_same_values(const qt_config *a, const qt_config *b) {
    assert_memory_equal(a, b, offsetof(qt_config, origin));
}

void qtt_set_ok(qt_config *c, const char *list) {
    char buf[1024], err[512];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *a = buf, *bar; a; a = bar) {
        if ((bar = strchr(a, '|')) != NULL)
            *bar++ = '\0';
        if (qt_config_set(c, a, err, sizeof err) != 0)
            fail_msg("%s: %s", a, err);
    }
}
