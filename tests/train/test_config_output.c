/* test_config_output.c — the strict INI config, written out: the INI round trip of every key
 * (through a string and a real file), deep copies, the model fingerprint and diff, and the help
 * table. Test files are written into a mkdtemp directory that the group setup creates and
 * teardown removes. */
#define _POSIX_C_SOURCE 200809L

#include "qttest.h"

#include "train/io/config.h"
#include "train/io/config_keys.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The shared fixture (main.c), under the name the tests use. */
typedef qtt_tmpdir cfg_fixture;

static int setup(void **state) { return qtt_tmpdir_setup(state, "qat_config", "t.ini", false); }

/* ---- output -------------------------------------------------------------------------------- */

/* c → INI → a fresh default config: identical values; writing it again gives the same text. */
static void assert_round_trip(const qt_config *c) {
    qt_config d;
    char err[512];
    char *text = qt_config_to_ini(c);
    assert_non_null(text);
    assert_int_equal(qt_config_defaults(&d), 0);
    assert_int_equal(qt_config_load_string(&d, text, "config.ini", err, sizeof err), 0);
    qtt_assert_same_values(c, &d);
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
    qtt_set_ok(&c,
               "run.out_dir=runs/with space/x|run.seed=18446744073709551615|run.steps=1000000000|"
               "run.eval_every=0|run.eval_batches=3|run.ckpt_every=0|run.keep=1000|"
               "run.log_every=1|run.threads=1024|run.mode=grpo|run.init_from=runs/a b/x.h5");
    qtt_set_ok(&c, "model.n_layer=256|model.n_head=2|model.d_model=64|model.d_ff=7|"
                   "model.seq_len=65536|model.vocab_size=1048576|model.norm=rmsnorm|"
                   "model.positions=learned|model.attention=crope|model.crope_output=real|"
                   "model.tie_embeddings=no");
    qtt_set_ok(&c, "data.corpus=/tmp/c.txt|data.val_fraction=0.1|data.batch_size=65536");
    qtt_set_ok(&c, "optim.name=sgd|optim.lr=0.30000000000000004|optim.min_lr=-0|"
                   "optim.momentum=0.99999999999999989|optim.weight_decay=10|optim.beta1=0|"
                   "optim.beta2=0.999|optim.eps=4.9406564584124654e-324|optim.warmup_steps=0|"
                   "optim.schedule=constant|optim.grad_clip=1.7976931348623157e308");
    qtt_set_ok(&c, "quant.mode=single|quant.formats=mxfp4_e2m1|quant.format_weights=2|"
                   "quant.quantize=weights|quant.rounding=nearest|quant.ste=clipped|"
                   "quant.start_step=5|quant.anchor=mxfp8_e5m2|quant.weights_via_anchor=true|"
                   "quant.quantize_head=true");
    qtt_set_ok(&c, "lora.enabled=true|lora.init_from=base/x.h5|lora.base_format=mxfp4_e2m1|"
                   "lora.double_quant=false|lora.rank=4096|lora.alpha=0.1|lora.dropout=0.99|"
                   "lora.targets=q,v,down|lora.rslora=true|lora.train_norms=true");
    qtt_set_ok(&c, "task.kind=mixed|task.min_digits=9|task.max_digits=9|task.eval_size=100000|"
                   "task.eval_seed=18446744073709551615");
    qtt_set_ok(&c, "grpo.prompts_per_step=65536|grpo.group_size=2|grpo.max_new_tokens=65536|"
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
    qtt_write_bytes(fx->path, text, strlen(text));
    free(text);
    qt_config d;
    assert_int_equal(qt_config_defaults(&d), 0);
    assert_int_equal(qt_config_load(&d, fx->path, err, sizeof err), 0);
    qtt_assert_same_values(&c, &d);
    qt_config_free(&d);

    /* qt_config_copy is deep. */
    assert_int_equal(qt_config_copy(&d, &c), 0);
    qtt_assert_same_values(&c, &d);
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

    qtt_set_ok(&b, "optim.lr=0.5");
    qtt_set_ok(&b, "run.steps=7");
    assert_true(qt_config_model_hash(&a) == qt_config_model_hash(&b));
    /* A later key away from its default does change it. */
    qtt_set_ok(&b, "model.crope_output=real");
    assert_true(qt_config_model_hash(&a) != qt_config_model_hash(&b));
    qtt_set_ok(&b, "model.crope_output=complex");
    assert_true(qt_config_model_hash(&a) == qt_config_model_hash(&b));
    assert_int_equal(qt_config_model_diff(&a, &b, diff, sizeof diff), 0);
    assert_string_equal(diff, "");

    qtt_set_ok(&b, "model.n_layer=6");
    assert_true(qt_config_model_hash(&a) != qt_config_model_hash(&b));
    qtt_set_ok(&b, "model.norm=rmsnorm");
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

int qtt_run_config_output(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_round_trip),
        cmocka_unit_test(t_model_hash_and_diff),
        cmocka_unit_test(t_help),
    };
    return cmocka_run_group_tests_name("config_output", tests, setup, qtt_tmpdir_teardown);
}
