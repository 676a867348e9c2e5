/* test_anchor.c — placeholder until anchors land. */
#include "qttest.h"
int qtt_run_anchor(void) { return 0; }
