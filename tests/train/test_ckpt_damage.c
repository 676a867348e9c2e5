/* test_ckpt_damage.c — HDF5 checkpoints that must not be read back: a flipped byte anywhere
 * (payload, header, HDF5 metadata), edits made through HDF5, truncation, files that are not ours
 * or of another version or kind; and HDF5 kept quiet while we refuse them. Each test works in its
 * own mkdtemp directory. */
#define _POSIX_C_SOURCE 200809L

#include "qttest.h"

#include "train/io/ckpt.h"
#include "train/io/ckpt_internal.h" /* qt_ck_frame_seal: to reach the checks behind the header */

#include <fcntl.h>
#include <hdf5.h>
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

static void reseal(const char *path) {
    size_t n = 0;
    unsigned char *b = qtt_read_bytes(path, &n);
    assert_non_null(b);
    qt_ck_frame_seal(b, n);
    qtt_write_bytes(path, b, n);
    free(b);
}

/* ---- damage ---- */

static void test_flipped_payload_byte_is_detected(void **state) {
    fx *f = *state;
    sample s;
    qtt_sample_init(&s, 1);
    char err[512] = "";
    assert_int_equal(qt_ckpt_write(f->path, &s.ck, err, sizeof err), 0);
    size_t n0 = 0;
    unsigned char *good = qtt_read_bytes(f->path, &n0);

    /* The raw-bytes header catches it before HDF5 reads anything... */
    qtt_flip_payload_byte(f->path, &s.params[0], qtt_tensor_bytes(&s.params[0]), 0);
    qt_ckpt r;
    assert_int_equal(qt_ckpt_read(f->path, &r, err, sizeof err), -1);
    assert_has(err, f->path);
    assert_has(err, "checksum mismatch: file is corrupted (its bytes changed");
    assert_null(r.params); /* *ck is left empty */
    assert_int_equal(r.n_params, 0);

    /* ...and behind it, Fletcher32 names the dataset. */
    qtt_write_bytes(f->path, good, n0);
    qtt_flip_payload_byte(f->path, &s.params[0], qtt_tensor_bytes(&s.params[0]), 1);
    assert_int_equal(qt_ckpt_read(f->path, &r, err, sizeof err), -1);
    assert_has(err, f->path);
    assert_has(err, "/params/wte is corrupted (Fletcher32 checksum failed)");
    assert_null(r.params);
    free(good);
    qtt_sample_free(&s);
}

/* A dataset rewritten through HDF5 carries a valid Fletcher32 sum; the file checksum still
 * catches it, and it covers attributes too. */
static void test_file_checksum_catches_valid_hdf5_edits(void **state) {
    fx *f = *state;
    sample s;
    qtt_sample_init(&s, 1);
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
    qtt_sample_free(&s);
}

static void test_truncated_file(void **state) {
    fx *f = *state;
    sample s;
    qtt_sample_init(&s, 1);
    char err[512] = "";
    assert_int_equal(qt_ckpt_write(f->path, &s.ck, err, sizeof err), 0);
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(truncate(f->path, st.st_size / 2), 0);
    qt_ckpt r;
    assert_int_equal(qt_ckpt_read(f->path, &r, err, sizeof err), -1);
    assert_has(err, f->path);
    assert_has(err, "truncated");
    qtt_sample_free(&s);
}

static void test_damaged_header(void **state) {
    fx *f = *state;
    sample s;
    qtt_sample_init(&s, 1);
    char err[512] = "";
    qt_ckpt r;
    assert_int_equal(qt_ckpt_write(f->path, &s.ck, err, sizeof err), 0);
    size_t n = 0;
    unsigned char *b = qtt_read_bytes(f->path, &n);
    assert_memory_equal(b, "qat-ckpt", 8);
    assert_memory_equal(b + 512, "\211HDF\r\n\032\n", 8); /* HDF5 starts after the user block */

    b[0] ^= 1; /* no longer our header, but HDF5 data after a user block: damaged, not foreign */
    qtt_write_bytes(f->path, b, n);
    assert_int_equal(qt_ckpt_read(f->path, &r, err, sizeof err), -1);
    assert_has(err, f->path);
    assert_has(err, "checkpoint header is damaged");
    b[0] ^= 1;

    b[8] = 2;
    qtt_write_bytes(f->path, b, n);
    assert_int_equal(qt_ckpt_read(f->path, &r, err, sizeof err), -1);
    assert_has(err, "checkpoint header version 2");
    b[8] = 1;

    unsigned char *longer = malloc(n + 3);
    memcpy(longer, b, n);
    memcpy(longer + n, "abc", 3);
    qtt_write_bytes(f->path, longer, n + 3);
    assert_int_equal(qt_ckpt_read(f->path, &r, err, sizeof err), -1);
    assert_has(err, "file has extra bytes");
    free(longer);

    qtt_write_bytes(f->path, b, 20); /* shorter than the header itself */
    assert_int_equal(qt_ckpt_read(f->path, &r, err, sizeof err), -1);
    assert_has(err, "truncated file");
    free(b);
    qtt_sample_free(&s);
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
    unsigned char *b = qtt_read_bytes(f->path, &n);
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
    qtt_write_bytes(f->path, text, strlen(text));
    assert_int_equal(qt_ckpt_read(f->path, &r, err, sizeof err), -1);
    assert_has(err, f->path);
    assert_has(err, "not an HDF5 file");

    qtt_write_bytes(f->path, "", 0);
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

int qtt_run_ckpt_damage(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, qtt_tmpdir_teardown)
    const struct CMUnitTest tests[] = {
        T(test_flipped_payload_byte_is_detected),
        T(test_file_checksum_catches_valid_hdf5_edits),
        T(test_truncated_file),
        T(test_damaged_header),
        T(test_every_byte_flip_is_rejected),
        T(test_not_hdf5_missing_empty_directory),
        T(test_wrong_version_kind_and_missing_parts),
        T(test_hdf5_is_quiet_and_handler_restored),
    };
#undef T
    return cmocka_run_group_tests_name("ckpt_damage", tests, NULL, NULL);
}
