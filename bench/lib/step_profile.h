/* step_profile.h — an instrumented copy of qt_session_step (train/run/loop.c) for the benchmark:
 * the same ops as qt_model_loss (train/model/gpt.c) and ag_backward (autograd/tape.c), with a
 * timer per phase and per op, every op booked to its role in the model (forward and backward in
 * the same row). The copy is checked bit for bit against the real step, since it drifts silently
 * whenever gpt.c or tape.c change. */
#ifndef QAT_BENCH_LIB_STEP_PROFILE_H
#define QAT_BENCH_LIB_STEP_PROFILE_H

#include "autograd/ag.h"
#include "train/io/config.h"
#include "train/run/session.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Op roles in the step. Each tape node is tagged with the role of the model op that recorded it,
 * so forward and backward time land in the same row. */
enum {
    BENCH_ROLE_EMBED, /* token embedding + learned positions */
    BENCH_ROLE_NORM,  /* ln1, ln2, ln_f */
    BENCH_ROLE_QKV,   /* wq, wk, wv */
    BENCH_ROLE_ROPE,
    BENCH_ROLE_ATTN, /* fused causal attention */
    BENCH_ROLE_WO,
    BENCH_ROLE_RESID, /* residual adds */
    BENCH_ROLE_UP,
    BENCH_ROLE_GELU,
    BENCH_ROLE_DOWN,
    BENCH_ROLE_HEAD, /* LM head (wte when tied) */
    BENCH_ROLE_XENT, /* cross-entropy */
    BENCH_ROLE_FQ,   /* MX fake quantization of linear inputs and weights ([quant] mode != none) */
    BENCH_ROLE_COUNT
};
const char *bench_role_name(int role);

/* Phases of one step, in order. */
enum {
    BENCH_PHASE_DATA,
    BENCH_PHASE_FWD,
    BENCH_PHASE_ZERO,
    BENCH_PHASE_GRADS,
    BENCH_PHASE_BWD,
    BENCH_PHASE_CLIP,
    BENCH_PHASE_OPT,
    BENCH_PHASE_COUNT
};
const char *bench_phase_name(int phase);

/* Op times by role, summed over every profiled step since the replica check. */
typedef struct bench_prof {
    /* seconds summed over the profiled steps */
    double fwd[BENCH_ROLE_COUNT], bwd[BENCH_ROLE_COUNT];
    double cpu[BENCH_ROLE_COUNT]; /* process CPU seconds (all threads), fwd + bwd */
    unsigned char *tag;           /* role of tape node i */
    size_t tag_cap;
    /* the op in flight: its start (wall, CPU seconds) and the tape size before it */
    double t0;
    double c0;
    size_t n0;
    size_t grad_bytes; /* arena bytes of the grad buffers the last backward zero-filled */
    ag_tape *tape;
} bench_prof;

/* Zeroes p and allocates its node tags; p keeps `tape` (not owned) and profiles ops recorded on
 * it. Returns 0 or -1 (out of memory). */
int bench_prof_init(bench_prof *p, ag_tape *tape);
/* Releases p's tags (not p itself); a zero-initialized p is fine. */
void bench_prof_free(bench_prof *p);

/* One step like qt_session_step (train/run/loop.c), timed by phase: wall seconds into ph[],
 * process CPU seconds into pc[]; op times add up in p. Returns 0 or -1. */
int bench_profiled_step(qt_session *s, bench_prof *p, double lr, double ph[BENCH_PHASE_COUNT],
                        double pc[BENCH_PHASE_COUNT]);

/* Runs the real forward+backward and the profiled copy on one batch (no optimizer step) in the
 * format of the next step and compares loss and every gradient bit for bit. Returns true when
 * identical (prints a warning otherwise). Consumes one batch, and no format draw; leaves p's op
 * times at zero. */
bool bench_replica_matches(qt_session *s, bench_prof *p);

/* The learning rate qat-train would use at 0-based `step` of a run of `total` steps. */
double bench_step_lr(const qt_config *c, int64_t total, int64_t step);

#endif
