/* qttest.h — shared by the train/ test files. */
#ifndef QAT_TESTS_QTTEST_H
#define QAT_TESTS_QTTEST_H

#include "common/testutil.h"

/* Each test file exposes one runner returning its number of failed tests. */
int qtt_run_config(void);
int qtt_run_ckpt(void);
int qtt_run_model(void);
int qtt_run_anchor(void);
int qtt_run_format(void);
int qtt_run_ptq_model(void);
int qtt_run_crope_model(void);
int qtt_run_packed(void);
int qtt_run_generate(void);
int qtt_run_task_run(void);

#endif
