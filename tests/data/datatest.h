/* datatest.h — shared by the data/ test files. */
#ifndef QAT_TESTS_DATATEST_H
#define QAT_TESTS_DATATEST_H

#include "common/testutil.h"
#include "data/data.h"

#include <string.h>

/* Each test file exposes one runner returning its number of failed tests. */
int dtt_run_rng(void);
int dtt_run_tokenizer(void);
int dtt_run_corpus(void);
int dtt_run_split(void);
int dtt_run_sampler(void);
int dtt_run_val(void);
int dtt_run_task(void);

/* Helpers (main.c). Temporary trees live under $TMPDIR (or /tmp); each test removes its own. */
char *dtt_tempdir(void); /* mkdtemp'd directory, malloc'd path */
/* Write n bytes to dir/rel (parent directories must exist); returns the malloc'd full path. */
char *dtt_write(const char *dir, const char *rel, const void *bytes, size_t n);
char *dtt_path(const char *dir, const char *rel); /* malloc'd "dir/rel" */
void dtt_rmtree(const char *path);                /* like rm -rf; links are removed, not followed */
void dtt_fill(uint8_t *b, size_t n, uint64_t seed); /* deterministic pseudo-random bytes */

/* Fails unless needle occurs in haystack, printing both. */
#define assert_contains(haystack, needle)                                                          \
    dtt_assert_contains((haystack), (needle), __FILE__, __LINE__)
static inline void dtt_assert_contains(const char *h, const char *n, const char *file, int line) {
    if (!strstr(h, n)) {
        print_error("\"%s\" does not contain \"%s\"\n", h, n);
        _fail(file, line);
    }
}

#endif
