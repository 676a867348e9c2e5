/* test_config.c — the strict INI config, accepted input: the key table, the defaults, valid
 * files (with their origins), --set, and --set values that config.ini could not hold.
 * Rejections of files and cross-key validation are in test_config_errors.c, the written INI,
 * the model fingerprint and the help table in test_config_output.c. Test files are written into a
 * mkdtemp directory that the group setup creates and teardown removes. */
#define _POSIX_C_SOURCE 200809L

#include "qttest.h"

#include "train/io/config.h"
#include "train/io/config_keys.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The shared fixture (main.c), under the name the tests use. */
typedef qtt_tmpdir cfg_fixture;

static int setup(void **state) { return qtt_tmpdir_setup(state, "qat_config", "t.ini", false); }

static void expect_set_error(const char *assignment, const char *want) {
    qt_config c, d;
    char err[1024];
    assert_int_equal(qt_config_defaults(&c), 0);
    assert_int_equal(qt_config_defaults(&d), 0);
    assert_int_equal(qt_config_set(&c, assignment, err, sizeof err), -1);
    assert_string_equal(err, want);
    qtt_assert_same_values(&c, &d);
    qt_config_free(&c);
    qt_config_free(&d);
}

/* ---- the table and the defaults ------------------------------------------------------------ */

static void t_table_sane(void **state) {
    (void)state;
    char sections[256];
    qt_cfg_known_sections(sections, sizeof sections);
    assert_string_equal(sections, "run, model, data, optim, quant, lora, task, grpo");
    for (size_t i = 0; i < qt_cfg_nkeys; i++) {
        const qt_key *k = &qt_cfg_keys[i];
        /* Keys of a section are contiguous: a section seen before must be the current one. */
        for (size_t j = 0; j + 1 < i; j++)
            if (strcmp(qt_cfg_keys[j].section, k->section) == 0)
                assert_string_equal(qt_cfg_keys[i - 1].section, k->section);
        for (size_t j = 0; j < i; j++)
            assert_false(strcmp(qt_cfg_keys[j].section, k->section) == 0 &&
                         strcmp(qt_cfg_keys[j].name, k->name) == 0);
        /* The longest path fits on one INI line. */
        assert_true(strlen(k->name) + 3 + QT_CONFIG_STRING_MAX <= QT_CONFIG_LINE_MAX);
        assert_true(k->desc && k->desc[0]);
        if (k->type == QT_KT_INT || k->type == QT_KT_I64)
            assert_true(k->imin <= k->imax);
        if (k->type == QT_KT_INT)
            assert_true(k->imin >= INT32_MIN && k->imax <= INT32_MAX);
        if (k->type == QT_KT_DOUBLE)
            assert_true(k->dmin < k->dmax);
        if (k->type == QT_KT_ENUM)
            assert_non_null(k->choices);
    }
    assert_int_equal(qt_config_key_count(), qt_cfg_nkeys);
}

static void t_defaults(void **state) {
    (void)state;
    qt_config c;
    assert_int_equal(qt_config_defaults(&c), 0);
    assert_string_equal(c.run.out_dir, "runs/default");
    assert_true(c.run.seed == 1337);
    assert_true(c.run.steps == 1000 && c.run.eval_every == 100 && c.run.eval_batches == 8);
    assert_true(c.run.ckpt_every == 250 && c.run.keep == 3 && c.run.log_every == 10);
    assert_int_equal(c.run.threads, 0);
    assert_int_equal(c.run.mode, QT_MODE_PRETRAIN);
    assert_int_equal(c.model.n_layer, 4);
    assert_int_equal(c.model.n_head, 4);
    assert_int_equal(c.model.d_model, 128);
    assert_int_equal(c.model.d_ff, 512);
    assert_int_equal(c.model.seq_len, 128);
    assert_int_equal(c.model.vocab_size, 256);
    assert_int_equal(c.model.norm, QT_NORM_LAYERNORM);
    assert_int_equal(c.model.positions, QT_POS_ROPE);
    assert_int_equal(c.model.attention, QT_ATTN_STANDARD);
    assert_true(c.model.tie_embeddings);
    assert_string_equal(c.data.corpus, "/usr/share/games/fortunes");
    assert_true(c.data.val_fraction == 0.05 && c.data.batch_size == 16);
    assert_int_equal(c.optim.name, QT_OPT_ADAMW);
    assert_true(c.optim.lr == 1e-3 && c.optim.min_lr == 1e-4 && c.optim.momentum == 0.9);
    assert_true(c.optim.weight_decay == 0.1 && c.optim.beta1 == 0.9 && c.optim.beta2 == 0.95);
    assert_true(c.optim.eps == 1e-8 && c.optim.grad_clip == 1.0);
    assert_true(c.optim.warmup_steps == 100);
    assert_int_equal(c.optim.schedule, QT_SCHED_COSINE);
    assert_string_equal(qt_config_origin(&c, "optim", "lr"), "default");
    assert_null(qt_config_origin(&c, "optim", "lrr"));
    char err[512];
    assert_int_equal(qt_config_validate(&c, err, sizeof err), 0);
    qt_config_free(&c);
    qt_config_free(&c); /* idempotent */
    qt_config_free(NULL);
}

static void t_enum_names(void **state) {
    (void)state;
    assert_string_equal(qt_schedule_name(QT_SCHED_LINEAR), "linear");
    assert_string_equal(qt_schedule_name((qt_schedule)7), "?");
    assert_string_equal(qt_run_mode_name(QT_MODE_GRPO), "grpo");
    assert_string_equal(qt_norm_name(QT_NORM_RMSNORM), "rmsnorm");
    assert_string_equal(qt_positions_name(QT_POS_LEARNED), "learned");
    assert_string_equal(qt_attention_name(QT_ATTN_CROPE), "crope");
    assert_string_equal(qt_optimizer_name(QT_OPT_SGD), "sgd");
}

/* ---- valid input --------------------------------------------------------------------------- */

static void t_load_valid(void **state) {
    const cfg_fixture *fx = *state;
    /* BOM, CRLF, comments of both kinds, inline ';' comment, indented keys (stripped, not
     * continuations), ':' separator, a reopened section, booleans in other spellings. */
    const char *text = "\xEF\xBB\xBF; comment\r\n"
                       "# another\r\n"
                       "[optim]\r\n"
                       "  lr = 3e-4   ; peak\r\n"
                       "\tschedule=linear\r\n"
                       "\r\n"
                       "[model] ; the net\n"
                       "n_layer: 6\n"
                       "tie_embeddings = OFF\n"
                       "[run]\n"
                       "out_dir = runs/my run\n"
                       "seed = 18446744073709551615\n"
                       "[optim]\n"
                       "grad_clip = 0\n";
    qtt_write_bytes(fx->path, text, strlen(text));
    qt_config c;
    char err[512], want[256];
    assert_int_equal(qt_config_defaults(&c), 0);
    assert_int_equal(qt_config_load(&c, fx->path, err, sizeof err), 0);
    assert_true(c.optim.lr == 3e-4);
    assert_int_equal(c.optim.schedule, QT_SCHED_LINEAR);
    assert_int_equal(c.model.n_layer, 6);
    assert_false(c.model.tie_embeddings);
    assert_string_equal(c.run.out_dir, "runs/my run");
    assert_true(c.run.seed == UINT64_MAX);
    assert_true(c.optim.grad_clip == 0.0);
    snprintf(want, sizeof want, "%s:4", fx->path);
    assert_string_equal(qt_config_origin(&c, "optim", "lr"), want);
    snprintf(want, sizeof want, "%s:14", fx->path);
    assert_string_equal(qt_config_origin(&c, "optim", "grad_clip"), want);
    assert_string_equal(qt_config_origin(&c, "optim", "eps"), "default");

    /* Every boolean spelling. */
    const char *yes[] = {"true", "1", "yes", "on", "True"}, *no[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < 5; i++) {
        char a[64];
        snprintf(a, sizeof a, "model.tie_embeddings=%s", no[i % 4]);
        assert_int_equal(qt_config_set(&c, a, err, sizeof err), 0);
        assert_false(c.model.tie_embeddings);
        snprintf(a, sizeof a, "model.tie_embeddings=%s", yes[i]);
        assert_int_equal(qt_config_set(&c, a, err, sizeof err), 0);
        assert_true(c.model.tie_embeddings);
    }
    qt_config_free(&c);

    /* A line of exactly QT_CONFIG_LINE_MAX bytes is fine. */
    char line[QT_CONFIG_LINE_MAX + 8];
    memset(line, 'x', QT_CONFIG_LINE_MAX);
    line[0] = ';';
    line[QT_CONFIG_LINE_MAX] = '\0';
    assert_int_equal(qt_config_defaults(&c), 0);
    assert_int_equal(qt_config_load_string(&c, line, "s.ini", err, sizeof err), 0);
    qt_config_free(&c);
}

static void t_load_missing_file(void **state) {
    const cfg_fixture *fx = *state;
    qt_config c;
    char err[512], path[256], want[512];
    snprintf(path, sizeof path, "%s/nope.ini", fx->dir);
    assert_int_equal(qt_config_defaults(&c), 0);
    assert_int_equal(qt_config_load(&c, path, err, sizeof err), -1);
    snprintf(want, sizeof want, "cannot open config '%s': No such file or directory", path);
    assert_string_equal(err, want);
    assert_int_equal(qt_config_load(&c, fx->dir, err, sizeof err), -1);
    snprintf(want, sizeof want, "cannot read config '%s': Is a directory", fx->dir);
    assert_string_equal(err, want);
    /* Not a config file: refused before parsing. */
    char *big = malloc(QT_CONFIG_FILE_MAX + 1);
    assert_non_null(big);
    memset(big, '\n', QT_CONFIG_FILE_MAX + 1);
    qtt_write_bytes(fx->path, big, QT_CONFIG_FILE_MAX + 1);
    free(big);
    assert_int_equal(qt_config_load(&c, fx->path, err, sizeof err), -1);
    snprintf(want, sizeof want, "config '%s' is larger than %d bytes", fx->path,
             QT_CONFIG_FILE_MAX);
    assert_string_equal(err, want);
    qt_config_free(&c);
}

/* ---- --set --------------------------------------------------------------------------------- */

static void t_path_values(void **state) {
    (void)state;
    char a[QT_CONFIG_STRING_MAX + 64];
    int n = snprintf(a, sizeof a, "run.out_dir=");
    memset(a + n, 'p', QT_CONFIG_STRING_MAX + 1);
    a[n + QT_CONFIG_STRING_MAX + 1] = '\0';
    char want[512];
    snprintf(want, sizeof want, "--set: [run] out_dir = '%.80s...': longer than %d bytes", a + n,
             QT_CONFIG_STRING_MAX);
    expect_set_error(a, want);
    a[n + QT_CONFIG_STRING_MAX] = '\0'; /* exactly the limit is fine */
    qt_config c;
    char err[512];
    assert_int_equal(qt_config_defaults(&c), 0);
    assert_int_equal(qt_config_set(&c, a, err, sizeof err), 0);
    assert_int_equal(strlen(c.run.out_dir), QT_CONFIG_STRING_MAX);
    qt_config_free(&c);
    expect_set_error("run.out_dir=runs/a;b",
                     "--set: [run] out_dir = 'runs/a;b': contains ';', which INI files read as a "
                     "comment");
    expect_set_error("data.corpus=a\nb",
                     "--set: [data] corpus = 'a\nb': contains a control character");
}

static void t_set(void **state) {
    (void)state;
    qt_config c;
    assert_int_equal(qt_config_defaults(&c), 0);
    qtt_set_ok(&c, "optim.lr=3e-4");
    assert_true(c.optim.lr == 3e-4);
    assert_string_equal(qt_config_origin(&c, "optim", "lr"), "--set");
    qtt_set_ok(&c, "  model.norm =  rmsnorm ");
    assert_int_equal(c.model.norm, QT_NORM_RMSNORM);
    qtt_set_ok(&c, "optim.lr=5e-4"); /* last wins */
    assert_true(c.optim.lr == 5e-4);
    /* The closed ends of ranges are accepted. */
    qtt_set_ok(&c,
               "optim.lr=10|optim.momentum=0|data.val_fraction=0.5|model.n_layer=256|run.keep=1");
    assert_true(c.optim.lr == 10 && c.data.val_fraction == 0.5 && c.model.n_layer == 256);
    qtt_set_ok(&c, "run.out_dir=a=b");
    assert_string_equal(c.run.out_dir, "a=b");
    qt_config_free(&c);

    expect_set_error("optim.lr",
                     "--set 'optim.lr': expected section.key=value (e.g. optim.lr=3e-4)");
    expect_set_error("", "--set '': expected section.key=value (e.g. optim.lr=3e-4)");
    expect_set_error(NULL, "--set '': expected section.key=value (e.g. optim.lr=3e-4)");
    expect_set_error("lr=3e-4",
                     "--set 'lr=3e-4': expected section.key=value (did you mean optim.lr=...?)");
    expect_set_error("foo=1", "--set 'foo=1': expected section.key=value (e.g. optim.lr=3e-4)");
    expect_set_error("optimm.lr=1", "--set: unknown section [optimm] (known: run, model, data, "
                                    "optim, quant, lora, task, grpo)");
    expect_set_error("optim.lrr=1", "--set: unknown key 'lrr' in [optim] (did you mean 'lr'?)");
    expect_set_error("run.lr=1", "--set: unknown key 'lr' in [run] (it belongs in [optim])");
    expect_set_error(".lr=1", "--set: key 'lr' outside any section (it belongs in [optim])");
    expect_set_error("optim.lr=abc", "--set: [optim] lr = 'abc': not a number");
    expect_set_error("optim.lr=",
                     "--set: [optim] lr = '': empty value (expected double 0 < lr <= 10)");
    expect_set_error("model.n_layer=0",
                     "--set: [model] n_layer = '0': out of range (expected 1..256)");
    expect_set_error("optim.lr=inf", "--set: [optim] lr = 'inf': not a finite number");
}

int qtt_run_config(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_table_sane),
        cmocka_unit_test(t_defaults),
        cmocka_unit_test(t_enum_names),
        cmocka_unit_test(t_load_valid),
        cmocka_unit_test(t_load_missing_file),
        cmocka_unit_test(t_path_values),
        cmocka_unit_test(t_set),
    };
    return cmocka_run_group_tests_name("config", tests, setup, qtt_tmpdir_teardown);
}
