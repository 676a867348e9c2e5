/* optest.h — shared by the optim test files: one runner per file, each returning its failures. */
#ifndef QAT_TESTS_OPTEST_H
#define QAT_TESTS_OPTEST_H

#include "common/testutil.h"
#include "optim/opt.h"

int optt_run_adamw(void);
int optt_run_sgd(void);
int optt_run_state(void);
int optt_run_schedule(void);
int optt_run_clip(void);

#endif
