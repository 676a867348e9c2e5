/* main.c — the train/ test binary: one group per file. */
#include "qttest.h"

int main(void) {
    return qtt_run_config() + qtt_run_config_errors() + qtt_run_config_output() + qtt_run_ckpt() +
           qtt_run_ckpt_damage() + qtt_run_ckpt_dir() + qtt_run_model() + qtt_run_anchor() +
           qtt_run_anchor_convert() + qtt_run_anchor_eval() + qtt_run_format() +
           qtt_run_ptq_model() + qtt_run_crope_model() + qtt_run_packed() + qtt_run_generate() +
           qtt_run_task_run();
}
