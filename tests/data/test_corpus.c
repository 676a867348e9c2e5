/* test_corpus.c — loading files and directory trees, skips, errors, and the fortunes corpus. */
#define _POSIX_C_SOURCE 200809L

#include "datatest.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define FORTUNES "/usr/share/games/fortunes"

/* A tree where one global strcmp order of relative paths differs from sorting each directory on its
 * own ("a-b" < "a/deep/z" because '-' < '/'), with every kind of entry the loader must skip. */
static char *make_tree(void) {
    char *dir = dtt_tempdir();
    char *p;
    p = dtt_path(dir, "a");
    assert_int_equal(mkdir(p, 0700), 0);
    free(p);
    p = dtt_path(dir, "a/deep");
    assert_int_equal(mkdir(p, 0700), 0);
    free(p);
    free(dtt_write(dir, "b.txt", "BBB\n", 4));
    free(dtt_write(dir, "a-b", "dash\n", 5));
    free(dtt_write(dir, "a/x", "ax\n", 3));
    free(dtt_write(dir, "a/y.dat", "\x01\x00\x02", 3));
    free(dtt_write(dir, "a/deep/z", "deep\n", 5));
    free(dtt_write(dir, "empty", "", 0));
    free(dtt_write(dir, "C", "upper\n", 6)); /* 'C' < 'a' in strcmp */
    p = dtt_path(dir, "b.txt.u8");
    assert_int_equal(symlink("b.txt", p), 0);
    free(p);
    p = dtt_path(dir, "link-dir");
    assert_int_equal(symlink("a", p), 0);
    free(p);
    p = dtt_path(dir, "fifo");
    assert_int_equal(mkfifo(p, 0600), 0);
    free(p);
    return dir;
}

static void test_directory_tree(void **state) {
    (void)state;
    char *dir = make_tree();
    data_corpus c;
    char err[512] = "";
    int rc = data_corpus_load(dir, &c, err, sizeof err);
    if (rc != 0)
        print_error("%s\n", err);
    assert_int_equal(rc, 0);
    /* C, a-b, a/deep/z, a/x, (a/y.dat binary), b.txt, empty */
    const char *expect = "upper\ndash\ndeep\nax\nBBB\n";
    assert_int_equal(c.n_bytes, strlen(expect));
    assert_memory_equal(c.bytes, expect, c.n_bytes);
    assert_int_equal(c.n_files, 6);
    assert_int_equal(c.n_skipped_binary, 1);
    assert_int_equal(c.n_skipped_links, 2);
    assert_int_equal(c.n_skipped_other, 1);

    char sum[128];
    data_corpus_summary(&c, sum, sizeof sum);
    assert_string_equal(sum, "read 6 files (0.0 MB), skipped 1 binary, 2 links, 1 other");
    char tiny[8];
    data_corpus_summary(&c, tiny, sizeof tiny); /* truncates, stays terminated */
    assert_string_equal(tiny, "read 6 ");

    data_corpus_free(&c);
    assert_null(c.bytes);
    assert_int_equal(c.n_bytes, 0);
    data_corpus_free(&c); /* twice is fine: freed state is zeroed */
    data_corpus_free(NULL);
    dtt_rmtree(dir);
    free(dir);
}

static void test_single_file_and_link(void **state) {
    (void)state;
    char *dir = make_tree();
    data_corpus c;
    char err[512] = "";
    char *p = dtt_path(dir, "b.txt");
    assert_int_equal(data_corpus_load(p, &c, err, sizeof err), 0);
    assert_int_equal(c.n_bytes, 4);
    assert_memory_equal(c.bytes, "BBB\n", 4);
    assert_int_equal(c.n_files, 1);
    data_corpus_free(&c);
    free(p);

    /* The path given by the user may itself be a link: it is followed. */
    p = dtt_path(dir, "b.txt.u8");
    assert_int_equal(data_corpus_load(p, &c, err, sizeof err), 0);
    assert_memory_equal(c.bytes, "BBB\n", 4);
    data_corpus_free(&c);
    free(p);
    p = dtt_path(dir, "link-dir");
    assert_int_equal(data_corpus_load(p, &c, err, sizeof err), 0);
    assert_int_equal(c.n_bytes, strlen("deep\nax\n"));
    assert_memory_equal(c.bytes, "deep\nax\n", c.n_bytes);
    assert_int_equal(c.n_skipped_binary, 1);
    data_corpus_free(&c);
    free(p);
    dtt_rmtree(dir);
    free(dir);
}

static void test_errors(void **state) {
    (void)state;
    char *dir = make_tree();
    data_corpus c;
    char err[512];

    char *p = dtt_path(dir, "nope");
    c.n_bytes = 77;
    assert_int_equal(data_corpus_load(p, &c, err, sizeof err), -1);
    assert_contains(err, p);
    assert_contains(err, "No such file");
    assert_null(c.bytes);
    assert_int_equal(c.n_bytes, 0);
    free(p);

    p = dtt_path(dir, "a/y.dat");
    assert_int_equal(data_corpus_load(p, &c, err, sizeof err), -1);
    assert_contains(err, p);
    assert_contains(err, "binary");
    free(p);

    p = dtt_path(dir, "fifo");
    assert_int_equal(data_corpus_load(p, &c, err, sizeof err), -1);
    assert_contains(err, p);
    assert_contains(err, "not a regular file or directory");
    free(p);

    /* No text anywhere: an empty file, a binary file and a link. */
    char *sub = dtt_path(dir, "notext");
    assert_int_equal(mkdir(sub, 0700), 0);
    free(dtt_write(sub, "e", "", 0));
    free(dtt_write(sub, "bin", "\0\0", 2));
    p = dtt_path(sub, "l");
    assert_int_equal(symlink("e", p), 0);
    free(p);
    assert_int_equal(data_corpus_load(sub, &c, err, sizeof err), -1);
    assert_contains(err, sub);
    assert_contains(err, "no text (1 files read holding 0 bytes; skipped 1 binary, 1 links");
    assert_null(c.bytes);

    /* An empty directory says the same. */
    char *empty = dtt_path(dir, "a/deep/void");
    assert_int_equal(mkdir(empty, 0700), 0);
    assert_int_equal(data_corpus_load(empty, &c, err, sizeof err), -1);
    assert_contains(err, empty);
    assert_contains(err, "no text (0 files read");
    free(empty);

    /* err may be absent. */
    assert_int_equal(data_corpus_load(sub, &c, NULL, 0), -1);
    free(sub);
    dtt_rmtree(dir);
    free(dir);
}

/* Load with permissions enforced. Root bypasses them, so as root the load runs with the effective
 * uid of "nobody" (65534) and the tree opened up for it; returns 0 if permissions cannot bite. */
static int load_as_unprivileged(const char *dir, const char *victim, data_corpus *c, char *err,
                                size_t errlen) {
    FILE *f = fopen(victim, "rb");
    int dropped = 0;
    if (f) {
        fclose(f);
        if (geteuid() != 0 || seteuid(65534) != 0)
            return 0;
        f = fopen(victim, "rb");
        if (f) {
            fclose(f);
            assert_int_equal(seteuid(0), 0);
            return 0;
        }
        dropped = 1;
    }
    int rc = data_corpus_load(dir, c, err, errlen);
    if (dropped)
        assert_int_equal(seteuid(0), 0);
    assert_int_equal(rc, -1);
    return 1;
}

static void test_unreadable(void **state) {
    (void)state;
    char *dir = make_tree();
    char *a = dtt_path(dir, "a"), *deep = dtt_path(dir, "a/deep"), *x = dtt_path(dir, "a/x");
    /* Traversable for everyone (mkdtemp makes 0700), only the victim is closed. */
    assert_int_equal(chmod(dir, 0755), 0);
    assert_int_equal(chmod(a, 0755), 0);
    assert_int_equal(chmod(deep, 0755), 0);
    data_corpus c;
    char err[512] = "";
    int ran = 0;

    assert_int_equal(chmod(x, 0), 0);
    if (load_as_unprivileged(dir, x, &c, err, sizeof err)) {
        ran++;
        assert_contains(err, x);
        assert_contains(err, "cannot open: Permission denied");
        assert_null(c.bytes);
    }
    assert_int_equal(chmod(x, 0644), 0);

    assert_int_equal(chmod(deep, 0), 0);
    if (load_as_unprivileged(dir, deep, &c, err, sizeof err)) {
        ran++;
        assert_contains(err, deep);
        assert_contains(err, "cannot open directory: Permission denied");
    }
    assert_int_equal(chmod(deep, 0755), 0);

    free(a);
    free(deep);
    free(x);
    dtt_rmtree(dir);
    free(dir);
    if (!ran) {
        print_message("skipped: file permissions cannot be enforced for this process\n");
        skip();
    }
}

static void test_fortunes(void **state) {
    (void)state;
    struct stat st;
    if (stat(FORTUNES, &st) != 0) {
        print_message("skipped: %s is not installed (Debian package fortunes)\n", FORTUNES);
        skip();
    }
    data_corpus c;
    char err[512] = "";
    int rc = data_corpus_load(FORTUNES, &c, err, sizeof err);
    if (rc != 0)
        print_error("%s\n", err);
    assert_int_equal(rc, 0);
    char sum[128];
    data_corpus_summary(&c, sum, sizeof sum);
    print_message("%s: %s (%zu bytes)\n", FORTUNES, sum, c.n_bytes);
    assert_true(c.n_bytes > 1000000);
    assert_true(c.n_files > 10);
    assert_true(c.n_skipped_binary > 0); /* the .dat indexes */
    assert_true(c.n_skipped_links > 0);  /* the .u8 links */
    assert_null(memchr(c.bytes, 0, c.n_bytes));

    /* The default setup works end to end: split and a sampler over the train part. */
    data_split s;
    assert_int_equal(data_split_make(c.bytes, c.n_bytes, 0.1, 256, FORTUNES, &s, err, sizeof err),
                     0);
    assert_int_equal(s.n_train + s.n_val, c.n_bytes);
    assert_close((double)s.n_val / (double)c.n_bytes, 0.1, 0.002, 0);
    data_rng r;
    data_rng_seed(&r, 1, DATA_STREAM_DATA);
    data_sampler *smp;
    assert_int_equal(
        data_sampler_create(s.train, s.n_train, 8, 256, &r, "train", &smp, err, sizeof err), 0);
    assert_int_equal(data_sampler_windows(smp), (s.n_train - 1) / 256);
    data_sampler_free(smp);
    data_split_free(&s);
    data_corpus_free(&c);
}

int dtt_run_corpus(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_directory_tree), cmocka_unit_test(test_single_file_and_link),
        cmocka_unit_test(test_errors),         cmocka_unit_test(test_unreadable),
        cmocka_unit_test(test_fortunes),
    };
    return cmocka_run_group_tests_name("data_corpus", tests, NULL, NULL);
}
