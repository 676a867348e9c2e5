/* main.c — the autograd test binary: every group, then the check that every op has a gradcheck. */
#include "agtest.h"

#include <stdlib.h>
#include <string.h>

uint32_t agt_ops_checked[(AG_OP_COUNT + 31) / 32];

/* Runs after all groups: an op without a passing double-precision gradient check fails here. */
static void test_every_op_has_gradcheck(void **state) {
    (void)state;
    int missing = 0;
    for (int op = 0; op < AG_OP_COUNT; op++)
        if (!(agt_ops_checked[op / 32] & (1u << (op % 32)))) {
            print_error("op '%s' has no passing gradient check\n", ag_op_name((ag_op)op));
            missing++;
        }
    assert_int_equal(missing, 0);
}

int main(void) {
    int failed = agt_run_core() + agt_run_ops_matmul() + agt_run_ops_elementwise() +
                 agt_run_ops_lm() + agt_run_ops_nn() + agt_run_fakequant() + agt_run_fastmath() +
                 agt_run_clinear() + agt_run_frozen_linear() + agt_run_dropout() +
                 agt_run_lora_linear() + agt_run_assign();
    failed += agt_run_grpo() + agt_run_gemm() + agt_run_attention();
    const struct CMUnitTest coverage[] = {cmocka_unit_test(test_every_op_has_gradcheck)};
    failed += cmocka_run_group_tests_name("autograd_coverage", coverage, NULL, NULL);
    return failed;
}
