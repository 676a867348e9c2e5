/* main.c — the optim/ test binary: one group per file. */
#include "optest.h"

int main(void) {
    return optt_run_adamw() + optt_run_sgd() + optt_run_state() + optt_run_schedule() +
           optt_run_clip();
}
