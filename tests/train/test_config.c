/* test_config.c — the strict INI config: defaults, every rejection with its exact message, --set,
 * cross-key validation, the INI round trip, the model fingerprint and the help table. Test files
 * are written into a mkdtemp directory that the group setup creates and teardown removes. */
#define _POSIX_C_SOURCE 200809L

#include "qttest.h"

#include "train/io/config.h"
#include "train/io/config_keys.h"

#include <float.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct cfg_fixture {
    char dir[64];
    char path[128]; /* dir/t.ini: the file every test writes */
} cfg_fixture;

static int setup(void **state) {
    cfg_fixture *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    snprintf(fx->dir, sizeof fx->dir, "/tmp/qat_config_XXXXXX");
    if (!mkdtemp(fx->dir)) {
        free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof fx->path, "%s/t.ini", fx->dir);
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    cfg_fixture *fx = *state;
    unlink(fx->path);
    rmdir(fx->dir);
    free(fx);
    return 0;
}

static void write_bytes(const char *path, const char *text, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Bytes of two configs up to the origin pointer (defaults zero padding and string tails). */
static void assert_same_values(const qt_config *a, const qt_config *b) {
    assert_memory_equal(a, b, offsetof(qt_config, origin));
}

/* Loading `len` bytes of `text` from the test file over the defaults fails with exactly
 * "<path>:<suffix>", and leaves the config untouched. */
static void expect_file_error_n(const cfg_fixture *fx, const char *text, size_t len,
                                const char *suffix) {
    qt_config c, d;
    char err[1024], want[1024];
    write_bytes(fx->path, text, len);
    assert_int_equal(qt_config_defaults(&c), 0);
    assert_int_equal(qt_config_defaults(&d), 0);
    assert_int_equal(qt_config_load(&c, fx->path, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:%s", fx->path, suffix);
    assert_string_equal(err, want);
    assert_same_values(&c, &d);
    for (size_t i = 0; i < qt_config_key_count(); i++)
        assert_string_equal(c.origin[i], "default");
    qt_config_free(&c);
    qt_config_free(&d);
}

static void expect_file_error(const cfg_fixture *fx, const char *text, const char *suffix) {
    expect_file_error_n(fx, text, strlen(text), suffix);
}

/* Same through qt_config_load_string, named "s.ini": the source does not change the verdict. */
static void expect_string_error(const char *text, const char *suffix) {
    qt_config c;
    char err[1024], want[1024];
    assert_int_equal(qt_config_defaults(&c), 0);
    assert_int_equal(qt_config_load_string(&c, text, "s.ini", err, sizeof err), -1);
    snprintf(want, sizeof want, "s.ini:%s", suffix);
    assert_string_equal(err, want);
    qt_config_free(&c);
}

static void expect_set_error(const char *assignment, const char *want) {
    qt_config c, d;
    char err[1024];
    assert_int_equal(qt_config_defaults(&c), 0);
    assert_int_equal(qt_config_defaults(&d), 0);
    assert_int_equal(qt_config_set(&c, assignment, err, sizeof err), -1);
    assert_string_equal(err, want);
    assert_same_values(&c, &d);
    qt_config_free(&c);
    qt_config_free(&d);
}

/* Apply "a=1|b=2|..." through qt_config_set, failing the test with the message on any error. */
static void set_ok(qt_config *c, const char *list) {
    char buf[1024], err[512];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *a = buf, *bar; a; a = bar) {
        if ((bar = strchr(a, '|')) != NULL)
            *bar++ = '\0';
        if (qt_config_set(c, a, err, sizeof err) != 0)
            fail_msg("%s: %s", a, err);
    }
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
    write_bytes(fx->path, text, strlen(text));
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
    write_bytes(fx->path, big, QT_CONFIG_FILE_MAX + 1);
    free(big);
    assert_int_equal(qt_config_load(&c, fx->path, err, sizeof err), -1);
    snprintf(want, sizeof want, "config '%s' is larger than %d bytes", fx->path,
             QT_CONFIG_FILE_MAX);
    assert_string_equal(err, want);
    qt_config_free(&c);
}

/* ---- rejections ---------------------------------------------------------------------------- */

/* Each bad input and the exact message after "FILE:". Every row is loaded from a file in the
 * temporary directory and as a string; both must fail the same way and change nothing. */
static const struct bad_case {
    const char *text, *msg;
} bad_cases[] = {
    /* Unknown sections and keys; a section with no keys is caught too (inih says nothing). */
    {"[run]\n[optimm]\n",
     "2: unknown section [optimm] (known: run, model, data, optim, quant, lora, task, grpo)"},
    {"[ optim ]\n",
     "1: unknown section [ optim ] (known: run, model, data, optim, quant, lora, task, grpo)"},
    {"[optim]\n\nlrr = 1e-3\n", "3: unknown key 'lrr' in [optim] (did you mean 'lr'?)"},
    {"[model]\nN_LAYERS = 4\n", "2: unknown key 'N_LAYERS' in [model] (did you mean 'n_layer'?)"},
    {"[data]\nfoo = 1\n",
     "2: unknown key 'foo' in [data] (known: corpus, val_fraction, batch_size)"},
    {"[run]\nlr = 1e-3\n", "2: unknown key 'lr' in [run] (it belongs in [optim])"},
    {"lr = 1e-3\n[optim]\n", "1: key 'lr' outside any section (it belongs in [optim])"},
    {"; c\nfoo = 1\n", "2: key 'foo' outside any section (sections: run, model, data, optim, "
                       "quant, lora, task, grpo)"},
    /* Syntax. inih goes on after a line it cannot read: the first error in the file wins. */
    {"[optim\nlr = 1\n", "1: section header '[optim' has no closing ']'"},
    {"[optim] lr = 1\n", "1: unexpected text after ']': 'lr = 1'"},
    {"[optim]\n = 1\n", "2: missing key name before '='"},
    {"[optim]\nlr\n", "2: expected '[section]' or 'key = value', got 'lr'"},
    {"[optim]\nnonsense\nlr = abc\n", "2: expected '[section]' or 'key = value', got 'nonsense'"},
    /* Indented lines: inih would append "2e-3" to lr; stripped, it is a stray line. An indented
     * key is an ordinary key, and its errors name it rather than the key above. */
    {"[optim]\nlr = 1e-3\n    2e-3\n", "3: expected '[section]' or 'key = value', got '2e-3'"},
    {"[optim]\nlr = 1e-3\n  lrr = 2e-3\n", "3: unknown key 'lrr' in [optim] (did you mean 'lr'?)"},
    /* Duplicates, also across a reopened section. */
    {"[optim]\n; c\nlr = 1e-3\nbeta1 = 0.8\nlr = 2e-3\n",
     "5: [optim] lr set twice (first at line 3)"},
    {"[model]\nn_layer = 2\n[run]\n[model]\nn_layer = 2\n",
     "5: [model] n_layer set twice (first at line 2)"},
    /* Not numbers, or not the whole text. */
    {"[optim]\nlr = abc\n", "2: [optim] lr = 'abc': not a number"},
    {"[optim]\nlr = 1e-3x\n", "2: [optim] lr = '1e-3x': not a number"},
    {"[optim]\nlr = 1e-3 x\n", "2: [optim] lr = '1e-3 x': not a number"},
    {"[model]\nn_layer = 4.0\n", "2: [model] n_layer = '4.0': not an integer"},
    {"[model]\nn_layer = 1e2\n", "2: [model] n_layer = '1e2': not an integer"},
    {"[model]\nn_layer = 0x10\n", "2: [model] n_layer = '0x10': not an integer"},
    {"[model]\nn_layer = +4\n", "2: [model] n_layer = '+4': not an integer"},
    {"[model]\nn_layer = 12abc\n", "2: [model] n_layer = '12abc': not an integer"},
    {"[run]\nseed = -1\n", "2: [run] seed = '-1': not an unsigned integer"},
    /* Ranges, open and closed ends. */
    {"[model]\nn_layer = 0\n", "2: [model] n_layer = '0': out of range (expected 1..256)"},
    {"[model]\nvocab_size = 255\n",
     "2: [model] vocab_size = '255': out of range (expected 256..1048576)"},
    {"[run]\nthreads = -1\n", "2: [run] threads = '-1': out of range (expected 0..1024)"},
    {"[optim]\nlr = 0\n", "2: [optim] lr = '0': out of range (expected 0 < lr <= 10)"},
    {"[optim]\nlr = 10.000001\n",
     "2: [optim] lr = '10.000001': out of range (expected 0 < lr <= 10)"},
    {"[optim]\nmomentum = 1\n",
     "2: [optim] momentum = '1': out of range (expected 0 <= momentum < 1)"},
    {"[optim]\ngrad_clip = -0.5\n",
     "2: [optim] grad_clip = '-0.5': out of range (expected grad_clip >= 0)"},
    {"[data]\nval_fraction = 0.51\n",
     "2: [data] val_fraction = '0.51': out of range (expected 0 < val_fraction <= 0.5)"},
    /* Overflow: beyond int64 (strtoll saturates), int (would wrap to 1), uint64. */
    {"[run]\nsteps = 99999999999999999999\n",
     "2: [run] steps = '99999999999999999999': out of range (expected 1..1000000000)"},
    {"[model]\nn_layer = 4294967297\n",
     "2: [model] n_layer = '4294967297': out of range (expected 1..256)"},
    {"[run]\nseed = 18446744073709551616\n",
     "2: [run] seed = '18446744073709551616': out of range (expected 0..2^64-1)"},
    /* NaN and infinities, also by overflow. */
    {"[optim]\nlr = nan\n", "2: [optim] lr = 'nan': not a finite number"},
    {"[optim]\nlr = NaN\n", "2: [optim] lr = 'NaN': not a finite number"},
    {"[optim]\ngrad_clip = inf\n", "2: [optim] grad_clip = 'inf': not a finite number"},
    {"[optim]\ngrad_clip = -Infinity\n", "2: [optim] grad_clip = '-Infinity': not a finite number"},
    {"[optim]\ngrad_clip = 1e999\n", "2: [optim] grad_clip = '1e999': not a finite number"},
    /* Empty values, paths included. */
    {"[optim]\nlr =\n", "2: [optim] lr = '': empty value (expected double 0 < lr <= 10)"},
    {"[optim]\nlr = ; x\n", "2: [optim] lr = '': empty value (expected double 0 < lr <= 10)"},
    {"[run]\nout_dir =\n", "2: [run] out_dir = '': empty value (expected path 1..160 bytes)"},
    {"[data]\ncorpus = \n", "2: [data] corpus = '': empty value (expected path 1..160 bytes)"},
    {"[optim]\nschedule =\n",
     "2: [optim] schedule = '': empty value (expected enum cosine|linear|constant)"},
    {"[model]\ntie_embeddings =\n",
     "2: [model] tie_embeddings = '': empty value (expected bool true|false)"},
    /* Enums (case-sensitive) and booleans. */
    {"[optim]\nschedule = cosin\n",
     "2: [optim] schedule = 'cosin': expected one of cosine, linear, constant"},
    {"[optim]\nschedule = Cosine\n",
     "2: [optim] schedule = 'Cosine': expected one of cosine, linear, constant"},
    {"[run]\nmode = rl\n", "2: [run] mode = 'rl': expected one of pretrain, sft, grpo"},
    {"[model]\ntie_embeddings = maybe\n",
     "2: [model] tie_embeddings = 'maybe': expected true or false (also 1/0, yes/no, on/off)"},
    /* Paths that would not survive config.ini. */
    {"[data]\ncorpus = a\tb\n", "2: [data] corpus = 'a\tb': contains a control character"},
    {"[data]\ncorpus = a;b\n",
     "2: [data] corpus = 'a;b': contains ';', which INI files read as a comment"},
};

static void t_bad_inputs(void **state) {
    const cfg_fixture *fx = *state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        expect_file_error(fx, bad_cases[i].text, bad_cases[i].msg);
        expect_string_error(bad_cases[i].text, bad_cases[i].msg);
    }
    static const char nul[] = "[optim]\nlr = 1\0x\n";
    expect_file_error_n(fx, nul, sizeof nul - 1, "2: NUL byte in line");
}

static void t_long_lines(void **state) {
    const cfg_fixture *fx = *state;
    char text[512], want[64];
    /* A comment line one byte over the limit, on line 2: inih would split it silently. */
    int n = snprintf(text, sizeof text, "[run]\n;");
    memset(text + n, 'x', QT_CONFIG_LINE_MAX);
    snprintf(text + n + QT_CONFIG_LINE_MAX, sizeof text - (size_t)n - QT_CONFIG_LINE_MAX,
             "\nseed = 1\n");
    snprintf(want, sizeof want, "2: line longer than %d bytes", QT_CONFIG_LINE_MAX);
    expect_file_error(fx, text, want);
    expect_string_error(text, want);
    /* Also when it is the last line, without a newline. */
    text[n + QT_CONFIG_LINE_MAX] = '\0';
    expect_file_error(fx, text, want);
}

static void t_atomic_load(void **state) {
    const cfg_fixture *fx = *state;
    /* Valid keys before the error are not applied: expect_file_error compares with defaults. */
    expect_file_error(fx, "[optim]\nlr = 5e-4\n[model]\nn_layer = 300\n",
                      "4: [model] n_layer = '300': out of range (expected 1..256)");
    /* A config that was already changed stays as it was, origins included. */
    qt_config c;
    char err[512];
    assert_int_equal(qt_config_defaults(&c), 0);
    set_ok(&c, "optim.lr=5e-4");
    assert_int_equal(
        qt_config_load_string(&c, "[optim]\nlr = 1e-2\nbeta1 = 2\n", "s", err, sizeof err), -1);
    assert_true(c.optim.lr == 5e-4);
    assert_string_equal(qt_config_origin(&c, "optim", "lr"), "--set");
    qt_config_free(&c);
    /* Uninitialised configs are refused, not crashed on. */
    qt_config z = {0};
    assert_int_equal(qt_config_load_string(&z, "", "s", err, sizeof err), -1);
    assert_string_equal(err, "config not initialised (call qt_config_defaults first)");
}

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

/* ---- --set --------------------------------------------------------------------------------- */

static void t_set(void **state) {
    (void)state;
    qt_config c;
    assert_int_equal(qt_config_defaults(&c), 0);
    set_ok(&c, "optim.lr=3e-4");
    assert_true(c.optim.lr == 3e-4);
    assert_string_equal(qt_config_origin(&c, "optim", "lr"), "--set");
    set_ok(&c, "  model.norm =  rmsnorm ");
    assert_int_equal(c.model.norm, QT_NORM_RMSNORM);
    set_ok(&c, "optim.lr=5e-4"); /* last wins */
    assert_true(c.optim.lr == 5e-4);
    /* The closed ends of ranges are accepted. */
    set_ok(&c, "optim.lr=10|optim.momentum=0|data.val_fraction=0.5|model.n_layer=256|run.keep=1");
    assert_true(c.optim.lr == 10 && c.data.val_fraction == 0.5 && c.model.n_layer == 256);
    set_ok(&c, "run.out_dir=a=b");
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

/* ---- cross-key checks ---------------------------------------------------------------------- */

static void t_validate(void **state) {
    const cfg_fixture *fx = *state;
    qt_config c;
    char err[1024], want[1024];
    const char *text = "[model]\nn_head = 4\nd_model = 130\n";
    write_bytes(fx->path, text, strlen(text));
    assert_int_equal(qt_config_defaults(&c), 0);
    assert_int_equal(qt_config_load(&c, fx->path, err, sizeof err), 0);
    assert_int_equal(qt_config_validate(&c, err, sizeof err), -1);
    snprintf(want, sizeof want,
             "model.d_model = 130 (%s:3) is not divisible by model.n_head = 4 (%s:2)", fx->path,
             fx->path);
    assert_string_equal(err, want);
    qt_config_free(&c);

    /* Head size 3 with RoPE (default), then with CRoPE; learned + standard accepts it. */
    assert_int_equal(qt_config_defaults(&c), 0);
    set_ok(&c, "model.d_model=12");
    assert_int_equal(qt_config_validate(&c, err, sizeof err), -1);
    assert_string_equal(err, "head size 3 (model.d_model = 12 (--set) / model.n_head = 4 "
                             "(default)) must be even for model.positions = rope (default)");
    set_ok(&c, "model.positions=learned");
    assert_int_equal(qt_config_validate(&c, err, sizeof err), 0);
    /* CRoPE is rotary by construction: a learned position table beside it is refused. */
    set_ok(&c, "model.attention=crope");
    assert_int_equal(qt_config_validate(&c, err, sizeof err), -1);
    assert_string_equal(err, "model.attention = crope (--set) rotates q and k by position itself "
                             "(rotary positions); model.positions = learned (--set) would add a "
                             "second position encoding: set model.positions = rope");
    set_ok(&c, "model.positions=rope");
    assert_int_equal(qt_config_validate(&c, err, sizeof err), -1);
    assert_string_equal(err, "head size 3 (model.d_model = 12 (--set) / model.n_head = 4 "
                             "(default)) must be even for model.attention = crope (--set)");
    /* CRoPE needs an even width in the first place. */
    set_ok(&c, "model.d_model=9");
    set_ok(&c, "model.n_head=3");
    assert_int_equal(qt_config_validate(&c, err, sizeof err), -1);
    assert_string_equal(err, "model.d_model = 9 (--set) must be even for model.attention = crope "
                             "(--set) (it pairs dimensions as complex numbers)");
    qt_config_free(&c);

    assert_int_equal(qt_config_defaults(&c), 0);
    set_ok(&c, "optim.min_lr=0.01");
    assert_int_equal(qt_config_validate(&c, err, sizeof err), -1);
    assert_string_equal(err, "optim.min_lr = 0.01 (--set) is greater than optim.lr = 0.001 "
                             "(default)");
    set_ok(&c, "optim.lr=0.01");
    assert_int_equal(qt_config_validate(&c, err, sizeof err), 0);
    /* Fields set by code get the per-key checks too (and no division by zero). */
    c.model.n_head = 0;
    assert_int_equal(qt_config_validate(&c, err, sizeof err), -1);
    assert_string_equal(err, "default: [model] n_head = '0': out of range (expected 1..256)");
    qt_config_free(&c);
}

/* ---- output -------------------------------------------------------------------------------- */

/* c → INI → a fresh default config: identical values; writing it again gives the same text. */
static void assert_round_trip(const qt_config *c) {
    qt_config d;
    char err[512];
    char *text = qt_config_to_ini(c);
    assert_non_null(text);
    assert_int_equal(qt_config_defaults(&d), 0);
    assert_int_equal(qt_config_load_string(&d, text, "config.ini", err, sizeof err), 0);
    assert_same_values(c, &d);
    char *again = qt_config_to_ini(&d);
    assert_string_equal(text, again);
    /* Every key is written, and every line fits inih. */
    size_t keys = 0;
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        assert_true((size_t)(nl - line) <= QT_CONFIG_LINE_MAX);
        keys += memchr(line, '=', (size_t)(nl - line)) != NULL;
        line = nl + 1;
    }
    assert_int_equal(keys, qt_config_key_count());
    free(again);
    free(text);
    qt_config_free(&d);
}

static void t_round_trip(void **state) {
    const cfg_fixture *fx = *state;
    qt_config c;
    char err[512];
    assert_int_equal(qt_config_defaults(&c), 0);
    assert_round_trip(&c);
    char *text = qt_config_to_ini(&c);
    assert_non_null(text);
    assert_non_null(strstr(text, "[run]\nout_dir = runs/default\nseed = 1337\n"));
    assert_non_null(strstr(text, "\n\n[optim]\nname = adamw\nlr = 0.001\n"));
    assert_non_null(strstr(text, "beta2 = 0.95\neps = 1e-08\n"));
    free(text);

    /* Every key away from its default, with doubles that need all 17 digits, a subnormal, -0. */
    set_ok(&c, "run.out_dir=runs/with space/x|run.seed=18446744073709551615|run.steps=1000000000|"
               "run.eval_every=0|run.eval_batches=3|run.ckpt_every=0|run.keep=1000|"
               "run.log_every=1|run.threads=1024|run.mode=grpo|run.init_from=runs/a b/x.h5");
    set_ok(&c, "model.n_layer=256|model.n_head=2|model.d_model=64|model.d_ff=7|"
               "model.seq_len=65536|model.vocab_size=1048576|model.norm=rmsnorm|"
               "model.positions=learned|model.attention=crope|model.crope_output=real|"
               "model.tie_embeddings=no");
    set_ok(&c, "data.corpus=/tmp/c.txt|data.val_fraction=0.1|data.batch_size=65536");
    set_ok(&c, "optim.name=sgd|optim.lr=0.30000000000000004|optim.min_lr=-0|"
               "optim.momentum=0.99999999999999989|optim.weight_decay=10|optim.beta1=0|"
               "optim.beta2=0.999|optim.eps=4.9406564584124654e-324|optim.warmup_steps=0|"
               "optim.schedule=constant|optim.grad_clip=1.7976931348623157e308");
    set_ok(&c, "quant.mode=single|quant.formats=mxfp4_e2m1|quant.format_weights=2|"
               "quant.quantize=weights|quant.rounding=nearest|quant.ste=clipped|"
               "quant.start_step=5|quant.anchor=mxfp8_e5m2|quant.weights_via_anchor=true|"
               "quant.quantize_head=true");
    set_ok(&c, "lora.enabled=true|lora.init_from=base/x.h5|lora.base_format=mxfp4_e2m1|"
               "lora.double_quant=false|lora.rank=4096|lora.alpha=0.1|lora.dropout=0.99|"
               "lora.targets=q,v,down|lora.rslora=true|lora.train_norms=true");
    set_ok(&c, "task.kind=mixed|task.min_digits=9|task.max_digits=9|task.eval_size=100000|"
               "task.eval_seed=18446744073709551615");
    set_ok(&c, "grpo.prompts_per_step=65536|grpo.group_size=2|grpo.max_new_tokens=65536|"
               "grpo.temperature=1e-300|grpo.top_k=1048576|grpo.top_p=1|"
               "grpo.scale_rewards=none|grpo.epsilon=0|grpo.epsilon_high=10|grpo.beta=1000|"
               "grpo.iterations=64|grpo.loss_type=dr_grpo|grpo.mask_truncated=true");
    for (size_t i = 0; i < qt_config_key_count(); i++) /* every key was set */
        assert_string_equal(c.origin[i], "--set");
    assert_true(c.optim.eps == 4.9406564584124654e-324 && c.optim.grad_clip == DBL_MAX);
    assert_true(c.optim.min_lr == 0 && signbit(c.optim.min_lr));
    assert_round_trip(&c);

    /* Through a real file, as qat-train writes out_dir/config.ini. */
    text = qt_config_to_ini(&c);
    write_bytes(fx->path, text, strlen(text));
    free(text);
    qt_config d;
    assert_int_equal(qt_config_defaults(&d), 0);
    assert_int_equal(qt_config_load(&d, fx->path, err, sizeof err), 0);
    assert_same_values(&c, &d);
    qt_config_free(&d);

    /* qt_config_copy is deep. */
    assert_int_equal(qt_config_copy(&d, &c), 0);
    assert_same_values(&c, &d);
    assert_ptr_not_equal(d.origin, c.origin);
    assert_string_equal(d.origin[0], "--set");
    qt_config_free(&d);
    qt_config_free(&c);
}

static void t_model_hash_and_diff(void **state) {
    (void)state;
    qt_config a, b;
    char diff[512];
    assert_int_equal(qt_config_defaults(&a), 0);
    assert_int_equal(qt_config_defaults(&b), 0);
    /* The fingerprint is FNV-1a of the [model] block of the INI text, without the keys added
     * later while they are at their default... */
    char *text = qt_config_to_ini(&a);
    char *start = strstr(text, "[model]\n"), *end = strstr(start, "\n\n");
    assert_non_null(start);
    assert_non_null(end);
    char *later = strstr(start, "crope_output = complex\n");
    assert_true(later && later < end);
    memmove(later, later + strlen("crope_output = complex\n"), strlen(later + 22) + 1);
    end = strstr(start, "\n\n");
    uint64_t h = 14695981039346656037ull;
    for (char *p = start; p <= end; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    free(text);
    assert_true(qt_config_model_hash(&a) == h);
    /* ...and pinned, so that checkpoints written today still match tomorrow's build. */
    assert_true(qt_config_model_hash(&a) == UINT64_C(0x15672ba02f53a79e));

    set_ok(&b, "optim.lr=0.5");
    set_ok(&b, "run.steps=7");
    assert_true(qt_config_model_hash(&a) == qt_config_model_hash(&b));
    /* A later key away from its default does change it. */
    set_ok(&b, "model.crope_output=real");
    assert_true(qt_config_model_hash(&a) != qt_config_model_hash(&b));
    set_ok(&b, "model.crope_output=complex");
    assert_true(qt_config_model_hash(&a) == qt_config_model_hash(&b));
    assert_int_equal(qt_config_model_diff(&a, &b, diff, sizeof diff), 0);
    assert_string_equal(diff, "");

    set_ok(&b, "model.n_layer=6");
    assert_true(qt_config_model_hash(&a) != qt_config_model_hash(&b));
    set_ok(&b, "model.norm=rmsnorm");
    assert_int_equal(qt_config_model_diff(&a, &b, diff, sizeof diff), 2);
    assert_string_equal(diff, "n_layer: 4 vs 6; norm: layernorm vs rmsnorm");
    assert_int_equal(qt_config_model_diff(&a, &b, NULL, 0), 2);
    char small[8];
    assert_int_equal(qt_config_model_diff(&a, &b, small, sizeof small), 2);
    assert_string_equal(small, "n_layer");
    qt_config_free(&a);
    qt_config_free(&b);
}

static void t_help(void **state) {
    (void)state;
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    assert_non_null(f);
    qt_config_print_help(f);
    assert_int_equal(fclose(f), 0);
    for (size_t i = 0; i < qt_cfg_nkeys; i++) {
        const qt_key *k = &qt_cfg_keys[i];
        char name[128], section[64];
        snprintf(name, sizeof name, "\n  %s.%s ", k->section, k->name);
        snprintf(section, sizeof section, "\n[%s]\n", k->section);
        if (!strstr(out, name))
            fail_msg("help lacks %s", name + 3);
        /* Grouped: the key comes after its section's header. */
        assert_true(strstr(out, section) && strstr(out, section) < strstr(out, name));
        assert_non_null(strstr(out, k->desc));
    }
    /* One row in full: columns are padded, so match the pieces in order. */
    char *row = strstr(out, "\n  optim.lr ");
    assert_non_null(row);
    char *t = strstr(row, "double 0 < lr <= 10"), *d = strstr(row, "1e-3"),
         *s = strstr(row, "peak learning rate"), *nl = strchr(row + 1, '\n');
    assert_true(t && d && s && t < d && d < s && s < nl);
    free(out);
}

int qtt_run_config(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_table_sane),
        cmocka_unit_test(t_defaults),
        cmocka_unit_test(t_enum_names),
        cmocka_unit_test(t_load_valid),
        cmocka_unit_test(t_load_missing_file),
        cmocka_unit_test(t_bad_inputs),
        cmocka_unit_test(t_long_lines),
        cmocka_unit_test(t_atomic_load),
        cmocka_unit_test(t_path_values),
        cmocka_unit_test(t_set),
        cmocka_unit_test(t_validate),
        cmocka_unit_test(t_round_trip),
        cmocka_unit_test(t_model_hash_and_diff),
        cmocka_unit_test(t_help),
    };
    return cmocka_run_group_tests_name("config", tests, setup, teardown);
}
