/* main.c — the quant/ test binary: one group per file. */
#include "mxtest.h"

int main(void) {
    return mxt_run_formats() + mxt_run_exact() + mxt_run_random() + mxt_run_sns() + mxt_run_pack() +
           mxt_run_ptq_parts() + mxt_run_ptq_gptq() + mxt_run_ptq_smooth() + mxt_run_nf4_code() +
           mxt_run_nf4_dq() + mxt_run_nf4_tensor();
}
