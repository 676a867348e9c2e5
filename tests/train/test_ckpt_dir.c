/* test_ckpt_dir.c — directories of checkpoints: file names and kind names, finding the newest
 * checkpoint that reads back (damaged ones skipped with a warning each), and pruning to the newest
 * few while leaving every other file alone. Each test works in its own mkdtemp directory. */
#define _POSIX_C_SOURCE 200809L

#include "qttest.h"

#include "train/io/ckpt.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* The shared fixture and sample checkpoint (main.c), under the names the tests use. */
typedef qtt_tmpdir fx;
typedef qtt_sample sample;

static int setup(void **state) {
    return qtt_tmpdir_setup(state, "qat_ckpt", "step_0000042.h5", true);
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
    qtt_sample_init(&s, 0);
    for (int64_t step = 100; step <= 300; step += 100) {
        s.ck.step = step;
        qt_ckpt_path(p, sizeof p, f->dir, step);
        assert_int_equal(qt_ckpt_write(p, &s.ck, err, sizeof err), 0);
    }
    qt_ckpt_path(p, sizeof p, f->dir, 300);
    qtt_flip_payload_byte(p, &s.params[5], qtt_tensor_bytes(&s.params[5]), 0);
    qt_ckpt_path(p, sizeof p, f->dir, 400);
    qtt_write_bytes(p, "garbage", 7);
    snprintf(p, sizeof p, "%s/step_0000500.h5.tmp", f->dir); /* not a checkpoint name */
    qtt_write_bytes(p, "partial", 7);

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
    qtt_sample_free(&s);
}

static void touch(const char *dir, const char *name) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    qtt_write_bytes(p, "x", 1);
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
    assert_int_equal(qtt_count_entries(f->dir), 5);
    const char *kept[] = {"step_0000009.h5", "step_10000000.h5", "notes.txt", "other.tmp",
                          "step_0000005.h5"};
    for (size_t i = 0; i < 5; i++) {
        snprintf(p, sizeof p, "%s/%s", f->dir, kept[i]);
        if (!qtt_exists(p)) {
            print_error("%s was deleted\n", kept[i]);
            fail();
        }
    }
    assert_int_equal(qt_ckpt_prune(f->dir, 2, err, sizeof err), 0); /* idempotent */
    assert_int_equal(qtt_count_entries(f->dir), 5);
    snprintf(p, sizeof p, "%s/absent", f->dir);
    assert_int_equal(qt_ckpt_prune(p, 2, err, sizeof err), 0);
}

int qtt_run_ckpt_dir(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, qtt_tmpdir_teardown)
    const struct CMUnitTest tests[] = {
        T(test_path_kind_find),
        T(test_find_latest_skips_damaged),
        T(test_prune_keeps_newest),
    };
#undef T
    return cmocka_run_group_tests_name("ckpt_dir", tests, NULL, NULL);
}
