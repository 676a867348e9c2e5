/* test_task_run.c — the task modes' pieces that are not the autograd op: GRPO's group-relative
 * advantages on hand-computed groups (every scale_rewards), and the held-out set's loss batches
 * (padding rows ignored, targets counted, rows as the SFT batches build them). */
#include "qttest.h"

#include "train/run/grpo.h"
#include "train/run/task.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Group 0 = {1, 0, 0, 1}: mean 1/2, sample std √(4·¼/3) = √(1/3). Group 1 = {1, 1, 1, 1}: all
 * equal, advantage 0 whatever the scale. Batch: mean 6/8 = 0.75, sample std
 * √((6·0.0625 + 2·0.5625)/7) = √(1.5/7). */
static void t_advantages(void **state) {
    (void)state;
    const double r[8] = {1, 0, 0, 1, 1, 1, 1, 1};
    double adv[8], mean, std;
    const double sg = sqrt(1.0 / 3.0), sb = sqrt(1.5 / 7.0);
    const double want_group = 0.5 / (sg + 1e-4), want_batch = 0.5 / (sb + 1e-4);
    qt_grpo_scale scales[3] = {QT_GRPO_SCALE_GROUP, QT_GRPO_SCALE_BATCH, QT_GRPO_SCALE_NONE};
    double want[3] = {want_group, want_batch, 0.5};
    for (int k = 0; k < 3; k++) {
        qt_grpo_advantages(r, 2, 4, scales[k], adv, &mean, &std);
        assert_close(mean, 0.75, 1e-15, 0);
        assert_close(std, sb, 1e-15, 0);
        const double sign[4] = {1, -1, -1, 1};
        for (int j = 0; j < 4; j++)
            assert_close(adv[j], sign[j] * want[k], 1e-12, 0);
        for (int j = 4; j < 8; j++)
            assert_true(adv[j] == 0.0);
    }
    /* A group of one success among eight: +7/8 and −1/8 over its std √(7/8·1/8·8/7) = √(1/8). */
    const double one[8] = {0, 0, 0, 1, 0, 0, 0, 0};
    qt_grpo_advantages(one, 1, 8, QT_GRPO_SCALE_GROUP, adv, &mean, &std);
    assert_close(adv[3], 0.875 / (sqrt(0.125) + 1e-4), 1e-12, 0);
    assert_close(adv[0], -0.125 / (sqrt(0.125) + 1e-4), 1e-12, 0);
    double sum = 0;
    for (int j = 0; j < 8; j++)
        sum += adv[j];
    assert_close(sum, 0.0, 1e-12, 0);
}

static void t_val_batches(void **state) {
    (void)state;
    qt_config c;
    assert_int_equal(qt_config_defaults(&c), 0);
    c.run.mode = QT_MODE_SFT;
    c.task.eval_size = 5;
    c.model.seq_len = 9; /* 2-digit addition needs 9 */
    qt_task t;
    char err[256];
    if (qt_task_open(&t, &c, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(t.n_held_out, 5);
    assert_int_equal(t.max_new, 4); /* up to "198" and the terminator */
    assert_int_equal(qt_task_val_batches(&t, 2), 3);
    int32_t x[2 * 9], y[2 * 9], rx[9], ry[9];
    size_t total = 0;
    for (size_t b = 0; b < 3; b++) {
        size_t k = qt_task_val_batch(&t, b, 2, 9, x, y);
        size_t want = 0;
        for (int i = 0; i < 2; i++) {
            size_t p = b * 2 + (size_t)i;
            if (p >= t.n_held_out) { /* the padding row: nothing to predict */
                for (int j = 0; j < 9; j++)
                    assert_true(y[i * 9 + j] == -1 && x[i * 9 + j] == DATA_TASK_PAD);
                continue;
            }
            data_task_sft_rows(&t.held_out[p], 1, 9, rx, ry);
            assert_memory_equal(x + i * 9, rx, sizeof rx);
            assert_memory_equal(y + i * 9, ry, sizeof ry);
            want += t.held_out[p].answer_len + 1; /* digits and the terminator */
        }
        assert_int_equal(k, want);
        total += k;
    }
    assert_true(total >= 5 * 3 && total <= 5 * 4);
    qt_task_close(&t);
    /* More held-out problems than the task has: a clear refusal. */
    c.task.min_digits = c.task.max_digits = 1;
    c.task.eval_size = 101;
    assert_int_equal(qt_task_open(&t, &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "task.eval_size = 101"));
    qt_config_free(&c);
}

int qtt_run_task_run(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_advantages),
        cmocka_unit_test(t_val_batches),
    };
    return cmocka_run_group_tests_name("task_run", tests, NULL, NULL);
}
