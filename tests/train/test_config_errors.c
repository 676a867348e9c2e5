/* test_config_errors.c — the strict INI config, refused input: every rejection of a file or
 * string with its exact message (unknown keys, syntax, numbers, ranges, enums, paths, long lines,
 * NUL bytes), loads that fail without changing anything, and the cross-key validation. Test files
 * are written into a mkdtemp directory that the group setup creates and teardown removes. */
#define _POSIX_C_SOURCE 200809L

#include "qttest.h"

#include "train/io/config.h"
#include "train/io/config_keys.h"

#include <stdio.h>
#include <string.h>

/* The shared fixture (main.c), under the name the tests use. */
typedef qtt_tmpdir cfg_fixture;

static int setup(void **state) { return qtt_tmpdir_setup(state, "qat_config", "t.ini", false); }

/* Loading `len` bytes of `text` from the test file over the defaults fails with exactly
 * "<path>:<suffix>", and leaves the config untouched. */
static void expect_file_error_n(const cfg_fixture *fx, const char *text, size_t len,
                                const char *suffix) {
    qt_config c, d;
    char err[1024], want[1024];
    qtt_write_bytes(fx->path, text, len);
    assert_int_equal(qt_config_defaults(&c), 0);
    assert_int_equal(qt_config_defaults(&d), 0);
    assert_int_equal(qt_config_load(&c, fx->path, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:%s", fx->path, suffix);
    assert_string_equal(err, want);
    qtt_assert_same_values(&c, &d);
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
    qtt_set_ok(&c, "optim.lr=5e-4");
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

/* ---- cross-key checks ---------------------------------------------------------------------- */

static void t_validate(void **state) {
    const cfg_fixture *fx = *state;
    qt_config c;
    char err[1024], want[1024];
    const char *text = "[model]\nn_head = 4\nd_model = 130\n";
    qtt_write_bytes(fx->path, text, strlen(text));
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
    qtt_set_ok(&c, "model.d_model=12");
    assert_int_equal(qt_config_validate(&c, err, sizeof err), -1);
    assert_string_equal(err, "head size 3 (model.d_model = 12 (--set) / model.n_head = 4 "
                             "(default)) must be even for model.positions = rope (default)");
    qtt_set_ok(&c, "model.positions=learned");
    assert_int_equal(qt_config_validate(&c, err, sizeof err), 0);
    /* CRoPE is rotary by construction: a learned position table beside it is refused. */
    qtt_set_ok(&c, "model.attention=crope");
    assert_int_equal(qt_config_validate(&c, err, sizeof err), -1);
    assert_string_equal(err, "model.attention = crope (--set) rotates q and k by position itself "
                             "(rotary positions); model.positions = learned (--set) would add a "
                             "second position encoding: set model.positions = rope");
    qtt_set_ok(&c, "model.positions=rope");
    assert_int_equal(qt_config_validate(&c, err, sizeof err), -1);
    assert_string_equal(err, "head size 3 (model.d_model = 12 (--set) / model.n_head = 4 "
                             "(default)) must be even for model.attention = crope (--set)");
    /* CRoPE needs an even width in the first place. */
    qtt_set_ok(&c, "model.d_model=9");
    qtt_set_ok(&c, "model.n_head=3");
    assert_int_equal(qt_config_validate(&c, err, sizeof err), -1);
    assert_string_equal(err, "model.d_model = 9 (--set) must be even for model.attention = crope "
                             "(--set) (it pairs dimensions as complex numbers)");
    qt_config_free(&c);

    assert_int_equal(qt_config_defaults(&c), 0);
    qtt_set_ok(&c, "optim.min_lr=0.01");
    assert_int_equal(qt_config_validate(&c, err, sizeof err), -1);
    assert_string_equal(err, "optim.min_lr = 0.01 (--set) is greater than optim.lr = 0.001 "
                             "(default)");
    qtt_set_ok(&c, "optim.lr=0.01");
    assert_int_equal(qt_config_validate(&c, err, sizeof err), 0);
    /* Fields set by code get the per-key checks too (and no division by zero). */
    c.model.n_head = 0;
    assert_int_equal(qt_config_validate(&c, err, sizeof err), -1);
    assert_string_equal(err, "default: [model] n_head = '0': out of range (expected 1..256)");
    qt_config_free(&c);
}

int qtt_run_config_errors(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_bad_inputs),
        cmocka_unit_test(t_long_lines),
        cmocka_unit_test(t_atomic_load),
        cmocka_unit_test(t_validate),
    };
    return cmocka_run_group_tests_name("config_errors", tests, setup, qtt_tmpdir_teardown);
}
