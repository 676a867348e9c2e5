/* main.c — the quant/ test binary: one group per file. */
#include "mxtest.h"

int main(void) {
    return mxt_run_formats() + mxt_run_exact() + mxt_run_random() + mxt_run_sns() + mxt_run_pack() +
           mxt_run_ptq() + mxt_run_nf4();
}
