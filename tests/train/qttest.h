/* qttest.h — shared by the train/ test files: their runners, and the helpers that more than one
 * test file uses (defined in qttest.c). A helper used by one file stays static in that file. */
#ifndef QAT_TESTS_QTTEST_H
#define QAT_TESTS_QTTEST_H

#include "common/testutil.h"

#include "train/io/anchor.h"
#include "train/io/ckpt.h"
#include "train/io/config.h"
#include "train/model/gpt.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Each test file exposes one runner returning its number of failed tests. */
int qtt_run_config(void);
int qtt_run_config_errors(void);
int qtt_run_config_output(void);
int qtt_run_ckpt(void);
int qtt_run_ckpt_damage(void);
int qtt_run_ckpt_dir(void);
int qtt_run_model(void);
int qtt_run_anchor(void);
int qtt_run_anchor_convert(void);
int qtt_run_anchor_eval(void);
int qtt_run_format(void);
int qtt_run_ptq_model(void);
int qtt_run_crope_model(void);
int qtt_run_packed(void);
int qtt_run_generate(void);
int qtt_run_task_run(void);

/* Fails the test unless the message str contains sub, printing both. */
#define assert_has(str, sub)                                                                       \
    do {                                                                                           \
        if (!strstr((str), (sub))) {                                                               \
            print_error("message '%s' lacks '%s'\n", (str), (sub));                                \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

/* ---- fixture: a fresh directory per test (or per group) ---- */

typedef struct qtt_tmpdir {
    char dir[256];  /* /tmp/NAME_XXXXXX, made by mkdtemp */
    char path[512]; /* dir/FILE: the file most tests write */
    bool check_hdf5;
    long open_ids; /* open HDF5 files and objects at setup; with check_hdf5, none may stay open */
} qtt_tmpdir;

/* A cmocka setup, once wrapped with a name, a file name and check_hdf5: *state becomes a new
 * qtt_tmpdir. Returns -1 if the directory cannot be made. */
int qtt_tmpdir_setup(void **state, const char *name, const char *file, bool check_hdf5);
/* The matching teardown: removes the directory with everything in it and frees the fixture.
 * Returns -1 (a failed test) if check_hdf5 is set and the test left HDF5 files or objects open. */
int qtt_tmpdir_teardown(void **state);

/* ---- file helpers ---- */

/* The whole file, caller frees; n is its length. NULL if it cannot be opened. */
unsigned char *qtt_read_bytes(const char *path, size_t *n);
/* Replaces the file with n bytes of b; a failure fails the test. */
void qtt_write_bytes(const char *path, const void *b, size_t n);
int qtt_exists(const char *path);
/* Entries of dir other than . and .. (0 if it cannot be opened). */
int qtt_count_entries(const char *dir);

/* ---- a sample checkpoint owned by the test (test_ckpt*.c) ---- */

enum { QTT_NP = 6, QTT_NO = 4, QTT_NR = 5 }; /* parameter, optimizer and RNG entries */

typedef struct qtt_sample {
    qt_ckpt ck;
    qt_ckpt_tensor params[QTT_NP], optim[QTT_NO];
    qt_ckpt_rng rngs[QTT_NR];
    char *config;
} qtt_sample;

/* Every field set to a value that a wrong type or a lost bit would change. */
void qtt_sample_init(qtt_sample *s, int64_t step);
void qtt_sample_free(qtt_sample *s);
/* Bytes of t's payload. */
size_t qtt_tensor_bytes(const qt_ckpt_tensor *t);
/* Flips one byte in the middle of tensor t's payload as stored in the file; with reseal, also
 * recomputes the raw-bytes header so that the damage reaches HDF5 and the dataset checks. */
void qtt_flip_payload_byte(const char *path, const qt_ckpt_tensor *t, size_t nbytes, int reseal);

/* ---- a small model with varied block scales (test_anchor*.c) ---- */

/* d_model 48 and d_ff 80 are not multiples of 32: every row ends with a short block. */
void qtt_small_config(qt_config *c, bool tied, bool head);
/* GPT-2 init, then rows scaled over many binades, one all-zero row and one tiny row (scale clamped
 * at 2^-127 in some formats), so every Slice-and-Scale path is exercised. Caller frees. */
qt_model *qtt_make_model(const qt_config *c, uint64_t seed);
size_t qtt_numel(const ag_tensor *t);
/* The tensor of a called name, or NULL. */
const qt_anchor_tensor *qtt_find_tensor(const qt_anchor_ckpt *a, const char *name);
/* Makes the anchor of m into *a (step 77, a fixed config and model hash) and writes it to path;
 * the caller frees *a. */
void qtt_write_model_anchor(const char *path, const qt_model *m, bool head, mx_format f,
                            mx_rounding r, qt_anchor_ckpt *a);

/* ---- configs (test_config*.c) ---- */

/* Bytes of two configs up to the origin pointer (defaults zero padding and string tails). */
void qtt_assert_same_values(const qt_config *a, const qt_config *b);
/* Apply "a=1|b=2|..." through qt_config_set, failing the test with the message on any error. */
void qtt_set_ok(qt_config *c, const char *list);

#endif
