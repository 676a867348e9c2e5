/* test_ops_basic.c — placeholder until the ops land. */
#include "agtest.h"
int agt_run_ops_basic(void) { return 0; }
