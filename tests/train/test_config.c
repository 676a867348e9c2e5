/* test_config.c — placeholder until the module lands. */
#include "qttest.h"
int qtt_run_config(void) { return 0; }
