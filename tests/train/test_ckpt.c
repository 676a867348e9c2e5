/* test_ckpt.c — HDF5 checkpoints, writing and reading: round trip of every field, inputs the
 * writer refuses, atomic replacement. Damage detection is in test_ckpt_damage.c, directories of
 * checkpoints in test_ckpt_dir.c; the sample checkpoint and file helpers are in main.c. Each test
 * works in its own mkdtemp directory. */
#define _POSIX_C_SOURCE 200809L

#include "qttest.h"

#include "train/io/ckpt.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The shared fixture and sample checkpoint (main.c), under the names the tests use. */
typedef qtt_tmpdir fx;
typedef qtt_sample sample;

static int setup(void **state) {
    return qtt_tmpdir_setup(state, "qat_ckpt", "step_0000042.h5", true);
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
        assert_memory_equal(g->data, want[i].data, qtt_tensor_bytes(&want[i]));
    }
    for (size_t i = 1; i < ng; i++) /* documented: sorted bytewise by name */
        assert_true(strcmp(got[i - 1].name, got[i].name) < 0);
}

/* ---- round trip ---- */

static void test_round_trip_every_field(void **state) {
    fx *f = *state;
    sample s;
    qtt_sample_init(&s, (INT64_C(1) << 40) + 7);
    char err[512] = "";
    assert_int_equal(qt_ckpt_write(f->path, &s.ck, err, sizeof err), 0);
    assert_int_equal(qtt_count_entries(f->dir), 1); /* no .tmp left behind */

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
    assert_same_tensors(s.params, QTT_NP, r.params, r.n_params);
    assert_same_tensors(s.optim, QTT_NO, r.optim, r.n_optim);
    assert_int_equal(r.n_rngs, QTT_NR);
    for (int i = 0; i < QTT_NR; i++) {
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
    qtt_sample_free(&s);
}

static void test_round_trip_anchor_without_optim(void **state) {
    fx *f = *state;
    sample s;
    qtt_sample_init(&s, 7);
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
    assert_same_tensors(s.params, QTT_NP, r.params, r.n_params);
    qt_ckpt_free(&r);
    qtt_sample_free(&s);
}

static void test_overwrite_replaces(void **state) {
    fx *f = *state;
    sample s;
    qtt_sample_init(&s, 1);
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
    qtt_sample_free(&s);
}

static void test_write_rejects_bad_input(void **state) {
    fx *f = *state;
    sample s;
    qtt_sample_init(&s, 1);
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

    assert_int_equal(qtt_count_entries(f->dir), 0);
    qtt_sample_free(&s);
}

/* ---- atomic replacement ---- */

static void test_write_into_missing_directory(void **state) {
    fx *f = *state;
    sample s;
    qtt_sample_init(&s, 1);
    char err[512] = "", path[600];
    snprintf(path, sizeof path, "%s/no/such/dir/step_0000001.h5", f->dir);
    assert_int_equal(qt_ckpt_write(path, &s.ck, err, sizeof err), -1);
    assert_has(err, path);
    assert_has(err, "No such file or directory");
    assert_int_equal(qtt_count_entries(f->dir), 0);
    qtt_sample_free(&s);
}

/* A failed write leaves the previous file byte for byte, and removes only a .tmp it created. */
static void test_failed_write_keeps_old_file(void **state) {
    fx *f = *state;
    sample s;
    qtt_sample_init(&s, 10);
    char err[512] = "", tmp[600];
    assert_int_equal(qt_ckpt_write(f->path, &s.ck, err, sizeof err), 0);
    size_t n0 = 0, n1 = 0;
    unsigned char *before = qtt_read_bytes(f->path, &n0);
    s.ck.step = 20;

    snprintf(tmp, sizeof tmp, "%s.tmp", f->path);
    assert_int_equal(mkdir(tmp, 0755), 0); /* open(PATH.tmp) fails: EISDIR */
    assert_int_equal(qt_ckpt_write(f->path, &s.ck, err, sizeof err), -1);
    assert_has(err, f->path);
    assert_has(err, ".tmp");
    assert_has(err, "Is a directory");
    unsigned char *after = qtt_read_bytes(f->path, &n1);
    assert_int_equal(n1, n0);
    assert_memory_equal(after, before, n0);
    free(after);
    assert_int_equal(rmdir(tmp), 0); /* still the directory: not ours to delete */

    /* Disk full: PATH.tmp leads to /dev/full, so every write fails with ENOSPC. */
    if (qtt_exists("/dev/full")) {
        assert_int_equal(symlink("/dev/full", tmp), 0);
        assert_int_equal(qt_ckpt_write(f->path, &s.ck, err, sizeof err), -1);
        assert_has(err, f->path);
        assert_has(err, "No space left on device");
        assert_false(qtt_exists(tmp));
        after = qtt_read_bytes(f->path, &n1);
        assert_int_equal(n1, n0);
        assert_memory_equal(after, before, n0);
        free(after);
    }
    qt_ckpt r;
    assert_int_equal(qt_ckpt_read(f->path, &r, err, sizeof err), 0);
    assert_true(r.step == 10);
    qt_ckpt_free(&r);
    assert_int_equal(qtt_count_entries(f->dir), 1);
    free(before);
    qtt_sample_free(&s);
}

int qtt_run_ckpt(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, qtt_tmpdir_teardown)
    const struct CMUnitTest tests[] = {
        T(test_round_trip_every_field),       T(test_round_trip_anchor_without_optim),
        T(test_overwrite_replaces),           T(test_write_rejects_bad_input),
        T(test_write_into_missing_directory), T(test_failed_write_keeps_old_file),
    };
#undef T
    return cmocka_run_group_tests_name("ckpt", tests, NULL, NULL);
}
