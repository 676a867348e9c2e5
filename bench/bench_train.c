/* bench_train.c — training-step throughput of qat on a config, against the sgemm rate measured in
 * the same process.
 *
 *   bench_train CONFIG.ini [--steps N] [--warmup W] [--set section.key=value]... [--no-sgemm]
 *               [--no-profile]
 *
 * The session is opened exactly as qat-train opens it (qt_session_open), with run.out_dir forced
 * to a fresh directory under $TMPDIR (removed at exit), so a benchmark never touches a user's run.
 * W warm-up steps (the first one grows the step arena) are not timed; then N steps are timed
 * through qt_session_step, the very function qat-train calls. After each timed step, untimed by
 * it, come one step through an instrumented copy of qt_session_step (phases, and every op by its
 * role in the model, forward and backward) and one round of sgemm on the model's weight shapes:
 * on a shared machine the load drifts within seconds, so the three are measured side by side.
 * The copy is checked once against the real step (same batch and format: bit-identical loss and
 * gradients, or a warning), and the sum of its phases is printed next to the real step's time.
 *
 * The last line of stdout is machine-readable (bench/compare.sh parses it):
 *   RESULT impl=qat threads=.. ms_median=.. ms_mean=.. tokens_per_s=.. cpu_ms_per_step=..
 *          gflop_step=.. gflops=.. sgemm_gflops=.. cpu_use=.. peak_rss_mib=..
 */
#define _POSIX_C_SOURCE 200809L
#include "autograd/ag.h"
#include "optim/opt.h"
#include "train/model/gpt.h"
#include "train/run/progress.h"
#include "train/run/session.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define MAX_STEPS 100000
/* Must stay the model's own constant (train/model/gpt.c); the replica check below catches drift. */
#define BENCH_LN_EPS 1e-5
#define BENCH_ROPE_BASE 10000.0

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* User + system CPU seconds of this process (all threads). */
static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

static void print_loadavg(const char *when) {
    FILE *f = fopen("/proc/loadavg", "r");
    char buf[128] = "?";
    if (f) {
        if (!fgets(buf, sizeof buf, f))
            snprintf(buf, sizeof buf, "?");
        fclose(f);
    }
    buf[strcspn(buf, "\n")] = '\0';
    printf("load average (%s): %s  [%ld online cores]\n", when, buf, sysconf(_SC_NPROCESSORS_ONLN));
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct stats {
    double median, mean, min, max;
} stats;

/* Summary of v[0..n) (n >= 1); v is sorted in place. */
static stats summarize(double *v, int n) {
    stats s = {0, 0, 0, 0};
    if (n < 1)
        return s;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    for (int i = 0; i < n; i++)
        s.mean += v[i];
    s.mean /= n;
    s.median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    s.min = v[0];
    s.max = v[n - 1];
    return s;
}

/* ---- FLOP count ------------------------------------------------------------------------------ */

typedef struct flops {
    double linear;    /* weight matmuls incl. the LM head, forward + backward */
    double attention; /* QKᵀ and PV, forward + backward, full T×T */
    double total;
    double mm_params; /* parameters used as matmul weights, LM head included (once, even if tied) */
} flops;

/* Forward of a linear layer with P weights over N tokens is 2·P·N FLOPs; backward is twice that
 * (dx and dw), hence 6·P·N. Attention per layer: QKᵀ and PV are each 2·B·T·T·C FLOPs forward
 * (all heads, full T×T although the causal mask makes half of it zero), backward 2× forward
 * (dQ, dK from dS; dP, dV from dO): 12·B·T²·C per layer. CRoPE's complex projections hold half
 * the parameters but do the same multiply-adds (ag_clinear multiplies by the expanded matrix), so
 * they count as 4·C² per layer too. */
static flops count_flops(const qt_model *m, int B, int T) {
    flops f;
    double C = m->C, F = m->F, V = m->V, L = m->L, N = (double)B * T;
    f.mm_params = L * (4 * C * C + 2 * C * F) + V * C;
    f.linear = 6 * f.mm_params * N;
    f.attention = 12 * L * (double)B * (double)T * (double)T * C;
    f.total = f.linear + f.attention;
    return f;
}

/* ---- sgemm ceiling --------------------------------------------------------------------------- */

/* One weight-matmul shape of the model: IC inputs, OC outputs, used `count` times per step. */
typedef struct mm_shape {
    const char *what;
    int IC, OC, count;
} mm_shape;

#define SG_SHAPES 5
#define SG_CASES (SG_SHAPES * 3) /* up to SG_SHAPES shapes x 3 transpose patterns */

/* sgemm on the model's shapes, one round (every case once) after each timed step, so that the
 * ceiling and the step are measured under the same load. */
typedef struct sgemm_bench {
    mm_shape sh[SG_SHAPES];
    int n_sh, R, rounds, cap;
    float *x, *dy, *w, *out;
    double *t[SG_CASES]; /* seconds, one per round */
} sgemm_bench;

static float *rand_buf(size_t n, unsigned *seed) {
    float *p = malloc(n * sizeof *p);
    if (!p)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        p[i] = (float)((*seed >> 8) & 0xFFFF) / 65536.0f - 0.5f;
    }
    return p;
}

/* One transpose pattern of linear(R, IC → OC) as the training does it. Pattern 0: forward
 * y = x·wᵀ (NT); 1: dx += dy·w (NN); 2: dw += dyᵀ·x (TN). Returns seconds. */
static double run_gemm(const sgemm_bench *g, int pat, int IC, int OC) {
    int R = g->R;
    double t0 = now_s();
    if (pat == 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, OC, IC, 1, g->x, IC, g->w, IC, 0,
                    g->out, OC);
    else if (pat == 1)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, IC, OC, 1, g->dy, OC, g->w, IC, 1,
                    g->out, IC);
    else
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, R, 1, g->dy, OC, g->x, IC, 1,
                    g->out, IC);
    return now_s() - t0;
}

static void sgemm_free(sgemm_bench *g) {
    free(g->x);
    free(g->dy);
    free(g->w);
    free(g->out);
    for (int i = 0; i < SG_CASES; i++)
        free(g->t[i]);
}

/* Buffers for `cap` rounds, and one untimed round. Returns 0 or -1 (out of memory). */
static int sgemm_init(sgemm_bench *g, const mm_shape *sh, int n_sh, int R, int cap) {
    memset(g, 0, sizeof *g);
    memcpy(g->sh, sh, (size_t)n_sh * sizeof *sh);
    g->n_sh = n_sh;
    g->R = R;
    g->cap = cap;
    int maxd = 1;
    for (int i = 0; i < n_sh; i++) {
        maxd = sh[i].IC > maxd ? sh[i].IC : maxd;
        maxd = sh[i].OC > maxd ? sh[i].OC : maxd;
    }
    unsigned seed = 12345;
    size_t big = (size_t)R * (size_t)maxd, sq = (size_t)maxd * (size_t)maxd;
    g->x = rand_buf(big, &seed);
    g->dy = rand_buf(big, &seed);
    g->w = rand_buf(sq, &seed);
    g->out = calloc(big > sq ? big : sq, sizeof *g->out);
    bool ok = g->x && g->dy && g->w && g->out;
    for (int i = 0; i < 3 * n_sh; i++)
        ok = ok && (g->t[i] = calloc((size_t)cap, sizeof(double))) != NULL;
    if (!ok) {
        sgemm_free(g);
        return -1;
    }
    for (int i = 0; i < n_sh; i++)
        for (int p = 0; p < 3; p++)
            run_gemm(g, p, sh[i].IC, sh[i].OC);
    return 0;
}

static void sgemm_round(sgemm_bench *g) {
    if (g->rounds == g->cap)
        return;
    for (int i = 0; i < g->n_sh; i++)
        for (int p = 0; p < 3; p++)
            g->t[3 * i + p][g->rounds] = run_gemm(g, p, g->sh[i].IC, g->sh[i].OC);
    g->rounds++;
}

/* Prints every case (median over the rounds) and returns the step-weighted rate in GFLOP/s: the
 * FLOPs of all of one step's weight matmuls divided by the time sgemm alone takes for them. */
static double sgemm_report(sgemm_bench *g) {
    static const char *const pat_name[3] = {"NT (fwd y=x·wT)", "NN (bwd dx=dy·w)",
                                            "TN (bwd dw=dyT·x)"};
    int R = g->R;
    printf("\nsgemm in this process (%d threads) on the model's weight-matmul shapes, median of %d "
           "rounds, one round after each timed step:\n",
           omp_get_max_threads(), g->rounds);
    printf("  %-8s %5s %5s %5s  %-18s %9s %9s\n", "layer", "M", "N", "K", "pattern", "ms",
           "GFLOP/s");
    double sum_f = 0, sum_t = 0;
    for (int i = 0; i < g->n_sh; i++) {
        for (int p = 0; p < 3; p++) {
            int IC = g->sh[i].IC, OC = g->sh[i].OC;
            double f = 2.0 * R * IC * OC;
            double t = summarize(g->t[3 * i + p], g->rounds).median;
            int M = p == 2 ? OC : R, N = p == 0 ? OC : IC, K = p == 0 ? IC : p == 1 ? OC : R;
            printf("  %-8s %5d %5d %5d  %-18s %9.3f %9.1f\n", g->sh[i].what, M, N, K, pat_name[p],
                   1e3 * t, f / t * 1e-9);
            sum_f += g->sh[i].count * f;
            sum_t += g->sh[i].count * t;
        }
    }
    double rate = sum_f / sum_t * 1e-9;
    printf("  step-weighted sgemm rate (each shape x3 patterns, counted as often as one step "
           "uses it): %.1f GFLOP/s\n",
           rate);
    return rate;
}

/* ---- instrumented step --------------------------------------------------------------------- */

/* Op roles in the step. Each tape node is tagged with the role of the model op that recorded it,
 * so forward and backward time land in the same row. */
enum {
    R_EMBED, /* token embedding + learned positions */
    R_NORM,  /* ln1, ln2, ln_f */
    R_QKV,   /* wq, wk, wv */
    R_ROPE,
    R_ATTN, /* fused causal attention */
    R_WO,
    R_RESID, /* residual adds */
    R_UP,
    R_GELU,
    R_DOWN,
    R_HEAD, /* LM head (wte when tied) */
    R_XENT, /* cross-entropy */
    R_FQ,   /* MX fake quantization of linear inputs and weights ([quant] mode != none) */
    R_COUNT
};
static const char *const role_name[R_COUNT] = {
    "embed+pos", "norms", "linear qkv",  "rope",    "attention",     "linear wo", "residual add",
    "linear up", "gelu",  "linear down", "lm head", "cross-entropy", "fake quant"};

typedef struct prof {
    double fwd[R_COUNT], bwd[R_COUNT]; /* seconds summed over the profiled steps */
    double cpu[R_COUNT];               /* process CPU seconds (all threads), fwd + bwd */
    unsigned char *tag;                /* role of tape node i */
    size_t tag_cap;
    double t0;
    double c0;
    size_t n0;
    size_t grad_bytes; /* arena bytes of the grad buffers the last backward zero-filled */
    ag_tape *tape;
} prof;

static void mark(prof *p) {
    p->n0 = ag_tape_size(p->tape);
    p->c0 = cpu_s();
    p->t0 = now_s();
}

/* Ends the op started at mark(): adds its forward time to `role` and tags the nodes it recorded. */
static ag_tensor *done(prof *p, int role, ag_tensor *r) {
    p->fwd[role] += now_s() - p->t0;
    p->cpu[role] += cpu_s() - p->c0;
    size_t n1 = ag_tape_size(p->tape);
    for (size_t i = p->n0; i < n1 && i < p->tag_cap; i++)
        p->tag[i] = (unsigned char)role;
    return r;
}

static ag_tensor *pos_view(ag_tape *t, ag_tensor *wpe, int T) {
    ag_tensor *v = ag_tape_alloc(t, sizeof *v);
    if (!v)
        return NULL;
    int64_t shape[2] = {T, wpe->shape[1]};
    ag_tensor_wrap(v, AG_F32, wpe->data, wpe->grad, 2, shape);
    v->requires_grad = wpe->requires_grad;
    return v;
}

static ag_tensor *norm_op(prof *p, qt_model *m, ag_tensor *x, ag_tensor *w, ag_tensor *b) {
    mark(p);
    return done(p, R_NORM,
                m->norm == QT_NORM_LAYERNORM ? ag_layernorm(p->tape, x, w, b, BENCH_LN_EPS)
                                             : ag_rmsnorm(p->tape, x, w, BENCH_LN_EPS));
}

/* gpt.c's quant_input: the input of a linear layer, fake-quantized when activations are. */
static ag_tensor *quant_in(prof *p, qt_model *m, ag_tensor *x) {
    const qt_quant *q = &m->quant;
    if (q->format == MX_FP32 || !q->activations)
        return x;
    ag_fq_spec spec = {q->format, q->rounding, q->ste, MX_FP32};
    mark(p);
    return done(p, R_FQ, ag_fakequant(p->tape, x, &spec, -1));
}

/* gpt.c's qlinear: y = x·Wᵀ with W fake-quantized in the step's format. */
static ag_tensor *linear_op(prof *p, qt_model *m, int role, ag_tensor *x, ag_tensor *w) {
    const qt_quant *q = &m->quant;
    if (q->format != MX_FP32 && !q->weights_ready) {
        ag_fq_spec spec = {q->format, q->rounding, q->ste, q->weights_via};
        mark(p);
        w = done(p, R_FQ, ag_fakequant(p->tape, w, &spec, -1));
    }
    mark(p);
    return done(p, role, ag_linear(p->tape, x, w));
}

/* gpt.c's project: a real projection, or CRoPE's complex-linear one (planes quantized apart). */
static ag_tensor *project_op(prof *p, qt_model *m, int role, ag_tensor *x, ag_tensor *re,
                             ag_tensor *im) {
    if (!im)
        return linear_op(p, m, role, x, re);
    const qt_quant *q = &m->quant;
    if (q->format != MX_FP32 && !q->weights_ready) {
        ag_fq_spec spec = {q->format, q->rounding, q->ste, q->weights_via};
        mark(p);
        re = done(p, R_FQ, ag_fakequant(p->tape, re, &spec, -1));
        mark(p);
        im = done(p, R_FQ, ag_fakequant(p->tape, im, &spec, -1));
    }
    mark(p);
    return done(p, role, ag_clinear(p->tape, x, re, im));
}

/* gpt.c's attention up to the output projection: the fused q/k/v GEMM (and packed rope) into
 * packed attention, or three projections (CRoPE). a is ln1's output, quantized. */
static ag_tensor *attention_op(prof *p, qt_model *m, qt_block *k, ag_tensor *a) {
    ag_tape *t = p->tape;
    ag_tensor *w3 = a ? qt_block_qkv_weight(t, k) : NULL;
    if (w3) {
        ag_tensor *qkv = linear_op(p, m, R_QKV, a, w3);
        if (m->positions == QT_POS_ROPE) {
            mark(p);
            qkv = done(p, R_ROPE, ag_rope_packed(t, qkv, m->NH, 0, BENCH_ROPE_BASE));
        }
        mark(p);
        return done(p, R_ATTN, ag_attention_packed(t, qkv, m->NH));
    }
    ag_tensor *q = project_op(p, m, R_QKV, a, k->wq, k->wq_im);
    ag_tensor *kk = project_op(p, m, R_QKV, a, k->wk, k->wk_im);
    ag_tensor *v = project_op(p, m, R_QKV, a, k->wv, k->wv_im);
    if (m->positions == QT_POS_ROPE) {
        mark(p);
        q = done(p, R_ROPE, ag_rope(t, q, m->NH, 0, BENCH_ROPE_BASE));
        mark(p);
        kk = done(p, R_ROPE, ag_rope(t, kk, m->NH, 0, BENCH_ROPE_BASE));
    }
    mark(p);
    return done(p, R_ATTN, ag_attention(t, q, kk, v, m->NH));
}

/* The op sequence of qt_model_loss (train/model/gpt.c), one timer per op. */
static ag_tensor *profiled_loss(prof *p, qt_model *m, const int32_t *x, const int32_t *y, int B,
                                int T) {
    ag_tape *t = p->tape;
    mark(p);
    ag_tensor *h = done(p, R_EMBED, ag_embedding(t, m->wte, x, B, T)); /* (B,T,C) */
    if (m->wpe) {
        mark(p);
        h = done(p, R_EMBED, ag_add(t, h, pos_view(t, m->wpe, T)));
    }
    for (int i = 0; i < m->L; i++) {
        qt_block *k = &m->blocks[i];
        ag_tensor *a = quant_in(p, m, norm_op(p, m, h, k->ln1_w, k->ln1_b));
        ag_tensor *att = attention_op(p, m, k, a);
        ag_tensor *o = project_op(p, m, R_WO, quant_in(p, m, att), k->wo, k->wo_im);
        mark(p);
        h = done(p, R_RESID, ag_add(t, h, o));
        ag_tensor *u = quant_in(p, m, norm_op(p, m, h, k->ln2_w, k->ln2_b));
        u = linear_op(p, m, R_UP, u, k->up);
        mark(p);
        u = quant_in(p, m, done(p, R_GELU, ag_gelu(t, u)));
        ag_tensor *d = linear_op(p, m, R_DOWN, u, k->down);
        mark(p);
        h = done(p, R_RESID, ag_add(t, h, d));
    }
    h = norm_op(p, m, h, m->lnf_w, m->lnf_b);
    ag_tensor *head = m->lm_head ? m->lm_head : m->wte, *logits; /* logits (B,T,V) */
    if (m->quant.head) {
        logits = linear_op(p, m, R_HEAD, quant_in(p, m, h), head);
    } else {
        mark(p);
        logits = done(p, R_HEAD, ag_linear(t, h, head));
    }
    mark(p);
    return done(p, R_XENT, ag_cross_entropy(t, logits, y));
}

/* ag_backward (autograd/tape.c) with a timer per node: ag_backward_prepare first (zero-filled
 * arena grads of every recorded tensor), then the backward functions in reverse. *t_nodes receives
 * the time at which the first node starts. Returns 0 or -1 (arena). */
static int profiled_backward(prof *p, ag_tensor *loss, double *t_nodes, double *c_nodes) {
    ag_tape *t = p->tape;
    size_t n = ag_tape_size(t), used0 = ag_arena_used(ag_tape_arena(t));
    if (ag_backward_prepare(t, loss) != 0)
        return -1;
    p->grad_bytes = ag_arena_used(ag_tape_arena(t)) - used0;
    for (size_t i = 0; i < loss->numel; i++)
        ((float *)loss->grad)[i] = 1.0f;
    *c_nodes = cpu_s();
    *t_nodes = now_s();
    for (size_t i = n; i-- > 0;) {
        /* The tape hands out const nodes; backward functions take them mutable (they are). */
        ag_node *nd = (ag_node *)ag_tape_node(t, i);
        int role = i < p->tag_cap ? p->tag[i] : R_XENT;
        double c0 = cpu_s(), t0 = now_s();
        ag_op_backward(nd->op)(nd);
        p->bwd[role] += now_s() - t0;
        p->cpu[role] += cpu_s() - c0;
    }
    return 0;
}

enum { P_DATA, P_FWD, P_ZERO, P_GRADS, P_BWD, P_CLIP, P_OPT, P_COUNT };
static const char *const phase_name[P_COUNT] = {
    "data batch", "forward",          "zero param grads", "bwd: grad buffers",
    "bwd: nodes", "clip (grad norm)", "optimizer step"};

/* One step like qt_session_step (train/run/loop.c), timed by phase: wall seconds into ph[],
 * process CPU seconds into pc[]. Returns 0 or -1. */
static int profiled_step(qt_session *s, prof *p, double lr, double ph[P_COUNT],
                         double pc[P_COUNT]) {
    double t[P_COUNT + 1], c[P_COUNT + 1];
    c[0] = cpu_s(), t[0] = now_s();
    mx_format f = qt_format_draw(&s->formats, &s->rng[DATA_STREAM_FORMAT], s->step);
    qt_quant q = qt_format_quant(&s->formats, f);
    qt_model_set_quant(s->model, &q);
    data_sampler_next(s->sampler, s->x, s->y);
    c[1] = cpu_s(), t[1] = now_s();
    ag_tape_reset(s->tape);
    ag_tensor *loss = profiled_loss(p, s->model, s->x, s->y, s->B, s->T);
    c[2] = cpu_s(), t[2] = now_s();
    if (!loss || !isfinite(*(float *)loss->data))
        return -1;
    qt_model_zero_grad(s->model);
    c[3] = cpu_s(), t[3] = now_s();
    if (profiled_backward(p, loss, &t[4], &c[4]) != 0)
        return -1;
    c[5] = cpu_s(), t[5] = now_s();
    opt_clip_grad_norm(s->oparams, s->model->n_params, s->cfg.optim.grad_clip);
    c[6] = cpu_s(), t[6] = now_s();
    opt_step(s->opt, lr);
    s->step++;
    c[7] = cpu_s(), t[7] = now_s();
    for (int i = 0; i < P_COUNT; i++) {
        ph[i] = t[i + 1] - t[i];
        pc[i] = c[i + 1] - c[i];
    }
    return 0;
}

/* Runs the real forward+backward and the profiled copy on one batch (no optimizer step) in the
 * format of the next step and compares loss and every gradient bit for bit. Returns true when
 * identical. Consumes one batch, and no format draw. */
static bool replica_matches(qt_session *s, prof *p) {
    qt_model *m = s->model;
    size_t nb = m->n_floats * sizeof(float);
    float *g = malloc(nb);
    bool same = false;
    if (!g)
        return false;
    data_rng frng = s->rng[DATA_STREAM_FORMAT]; /* a copy: the run's stream does not move */
    qt_quant q = qt_format_quant(&s->formats, qt_format_draw(&s->formats, &frng, s->step));
    qt_model_set_quant(m, &q);
    data_sampler_next(s->sampler, s->x, s->y);
    ag_tape_reset(s->tape);
    ag_tensor *loss = qt_model_loss(m, s->tape, s->x, s->y, s->B, s->T);
    qt_model_zero_grad(m);
    if (!loss || ag_backward(s->tape, loss, NULL) != 0)
        goto done;
    float l_ref = *(float *)loss->data;
    memcpy(g, m->grad, nb);
    ag_tape_reset(s->tape);
    loss = profiled_loss(p, m, s->x, s->y, s->B, s->T);
    qt_model_zero_grad(m);
    double tn, cn;
    if (!loss || profiled_backward(p, loss, &tn, &cn) != 0)
        goto done;
    float l_cp = *(float *)loss->data;
    same = memcmp(&l_ref, &l_cp, sizeof l_ref) == 0 && memcmp(g, m->grad, nb) == 0;
    if (!same) {
        double maxd = 0;
        for (size_t i = 0; i < m->n_floats; i++)
            maxd = fmax(maxd, fabs((double)g[i] - m->grad[i]));
        printf("WARNING: the profiled copy of the step differs from qt_model_loss+ag_backward "
               "(loss %.9g vs %.9g, max |grad diff| %.3g): gpt.c or tape.c changed; update "
               "profiled_loss/profiled_backward in bench_train.c\n",
               l_ref, l_cp, maxd);
    }
done:
    ag_tape_reset(s->tape);
    qt_model_zero_grad(m);
    memset(p->fwd, 0, sizeof p->fwd);
    memset(p->bwd, 0, sizeof p->bwd);
    memset(p->cpu, 0, sizeof p->cpu);
    free(g);
    return same;
}

/* The learning rate qat-train would use at 0-based `step` of a run of `total` steps. */
static double step_lr(const qt_config *c, int64_t total, int64_t step) {
    return opt_schedule_lr((opt_schedule)c->optim.schedule, c->optim.lr, c->optim.min_lr,
                           c->optim.warmup_steps, total, step);
}

/* ---- main ------------------------------------------------------------------------------------ */

static void usage(FILE *f) {
    fputs("usage: bench_train CONFIG.ini [--steps N] [--warmup W] [--set section.key=value]...\n"
          "                   [--no-sgemm] [--no-profile]\n"
          "  --steps N       timed steps (default 10)\n"
          "  --warmup W      untimed steps first (default 2; the first grows the arena)\n"
          "  --set S.K=V     config override, as for qat-train (run.threads=N sets the threads)\n"
          "  --no-sgemm      skip the in-process sgemm measurement\n"
          "  --no-profile    skip the per-phase / per-op breakdown (N more, untimed steps)\n"
          "run.out_dir is always replaced by a temporary directory, removed at exit.\n",
          f);
}

static int parse_int(const char *flag, const char *v, int lo, int *out) {
    char *end;
    long x = strtol(v, &end, 10);
    if (end == v || *end || x < lo || x > MAX_STEPS) {
        fprintf(stderr, "bench_train: %s expects an integer in [%d, %d], got '%s'\n", flag, lo,
                MAX_STEPS, v);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static void remove_out_dir(const char *dir) {
    char p[512];
    snprintf(p, sizeof p, "%s/config.ini", dir);
    remove(p);
    snprintf(p, sizeof p, "%s/config.ini.tmp", dir);
    remove(p);
    snprintf(p, sizeof p, "%s/ckpt", dir);
    rmdir(p);
    rmdir(dir);
}

/* One row of the op table; cpu_ms / wall = threads kept busy (spinning counts as busy). */
static void print_row(const char *name, double fwd_ms, double bwd_ms, double cpu_ms, double gflop,
                      double step_ms) {
    double tot = fwd_ms + bwd_ms;
    printf("  %-16s %9.2f %9.2f %9.2f %6.1f%% %6.2f", name, fwd_ms, bwd_ms, tot,
           100 * tot / step_ms, cpu_ms / tot);
    if (gflop > 0)
        printf(" %8.2f %9.1f", gflop, gflop / tot * 1e3);
    printf("\n");
}

int main(int argc, char **argv) {
    int steps = 10, warmup = 2, rc = 2;
    bool do_sgemm = true, do_profile = true;
    const char *config = NULL;
    const char **sets = calloc((size_t)argc + 1, sizeof *sets);
    char dir[256] = "", dir_set[300];
    double *ms = NULL, (*phs)[P_COUNT] = NULL, (*phc)[P_COUNT] = NULL;
    qt_session s;
    bool open = false;
    prof pf = {0};
    sgemm_bench sg_b = {0};
    if (!sets)
        return 1;
    int n_sets = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            rc = 0;
            goto out;
        } else if (!strcmp(a, "--steps") && has) {
            if (parse_int(a, argv[++i], 1, &steps))
                goto out;
        } else if (!strcmp(a, "--warmup") && has) {
            if (parse_int(a, argv[++i], 0, &warmup))
                goto out;
        } else if (!strcmp(a, "--set") && has) {
            sets[n_sets++] = argv[++i];
        } else if (!strncmp(a, "--set=", 6)) {
            sets[n_sets++] = a + 6;
        } else if (!strcmp(a, "--no-sgemm")) {
            do_sgemm = false;
        } else if (!strcmp(a, "--no-profile")) {
            do_profile = false;
        } else if (a[0] == '-' || config) {
            fprintf(stderr, "bench_train: unexpected argument '%s'\n", a);
            usage(stderr);
            goto out;
        } else {
            config = a;
        }
    }
    if (!config) {
        usage(stderr);
        goto out;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/qat-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "bench_train: cannot create a temporary directory '%s'\n", dir);
        dir[0] = '\0';
        goto out;
    }
    /* Last, so that it wins over any run.out_dir the user passed. */
    snprintf(dir_set, sizeof dir_set, "run.out_dir=%s", dir);
    sets[n_sets++] = dir_set;

    qt_train_opts o = {.config_path = config, .sets = sets, .n_sets = n_sets};
    print_loadavg("start");
    if ((rc = qt_session_open(&s, &o)) != QT_EXIT_OK)
        goto out;
    open = true;
    rc = 1;
    qt_model *m = s.model;
    const qt_config *c = &s.cfg;
    int B = s.B, T = s.T, nt = omp_get_max_threads();
    double tokens = (double)B * T;
    flops fl = count_flops(m, B, T);
    printf("config %s: GPT L=%d heads=%d d_model=%d d_ff=%d T=%d V=%d, %s, %s positions, %s "
           "embeddings; B=%d; %s\n",
           config, m->L, m->NH, m->C, m->F, T, m->V, qt_norm_name(m->norm),
           qt_positions_name(m->positions), m->tied ? "tied" : "untied", B,
           opt_kind_name((opt_kind)c->optim.name));
    printf("threads: OpenMP %d, OpenBLAS %d (%s; core %s)\n", nt, openblas_get_num_threads(),
           openblas_get_config(), openblas_get_corename());
    if (c->quant.mode == QT_QUANT_NONE)
        printf("quant: none (fp32 training)\n");
    else
        printf("quant: %s over {%s}, %s (fake-quant time is in the breakdown, not in the FLOPs)\n",
               qt_quant_mode_name(c->quant.mode), c->quant.formats,
               c->quant.quantize == QT_QUANTIZE_WEIGHTS_ACTS ? "weights+activations" : "weights");
    printf("parameters %zu (matmul weights incl. LM head %.0f); tokens/step %.0f\n",
           qt_model_param_count(m), fl.mm_params, tokens);
    if (m->slots) {
        printf("QLoRA: frozen base in %s, %.1f MB packed; %zu trainable parameters; no per-op "
               "breakdown (the profiled copy of the step covers plain models only)\n",
               qt_lora_base_name(c->lora.base_format), (double)qt_lora_base_bytes(m) / 1e6,
               qt_lora_trainable_count(m));
        do_profile = false;
    }

    ms = calloc((size_t)steps, sizeof *ms);
    phs = calloc((size_t)steps, sizeof *phs);
    phc = calloc((size_t)steps, sizeof *phc);
    if (!ms || !phs || !phc)
        goto out;
    int64_t total = warmup + (do_profile ? 2 : 1) * (int64_t)steps; /* every step we run */
    for (int i = 0; i < warmup; i++) {
        qt_step_result r;
        double lr = step_lr(c, total, s.step);
        if (qt_session_step(&s, lr, 0, &r) != QT_EXIT_OK)
            goto out;
    }
    printf("step arena after warm-up: %.1f MB peak\n",
           (double)ag_arena_peak(ag_tape_arena(s.tape)) / 1e6);

    /* gpt.c multiplies by wq, wk, wv stacked into one [3C,C] weight when they are plain real
     * matrices (not CRoPE's planes); the sgemm ceiling uses the shapes the step runs. */
    bool fused = m->L > 0 && m->blocks[0].wq && !m->blocks[0].wq_im;
    int n_sh = 0;
    mm_shape sh[SG_SHAPES];
    if (fused) {
        sh[n_sh++] = (mm_shape){"qkv", m->C, 3 * m->C, m->L};
        sh[n_sh++] = (mm_shape){"wo", m->C, m->C, m->L};
    } else {
        sh[n_sh++] = (mm_shape){"qkv/wo", m->C, m->C, 4 * m->L};
    }
    sh[n_sh++] = (mm_shape){"mlp.up", m->C, m->F, m->L};
    sh[n_sh++] = (mm_shape){"mlp.down", m->F, m->C, m->L};
    sh[n_sh++] = (mm_shape){"lm_head", m->C, m->V, 1};
    if (do_sgemm && sgemm_init(&sg_b, sh, n_sh, B * T, steps) != 0) {
        fprintf(stderr, "bench_train: out of memory for the sgemm measurement\n");
        goto out;
    }
    bool replica_ok = false;
    if (do_profile) {
        pf.tape = s.tape;
        pf.tag_cap = (size_t)1 << 16;
        pf.tag = calloc(pf.tag_cap, 1);
        if (!pf.tag)
            goto out;
        replica_ok = replica_matches(&s, &pf);
    }

    /* Timed step, then (untimed by it) one profiled step and one sgemm round: all three see the
     * same load, which drifts a lot on a shared machine. */
    double cpu = 0, wall = 0, last_loss = 0;
    for (int i = 0; i < steps; i++) {
        qt_step_result r;
        double lr = step_lr(c, total, s.step);
        double c0 = cpu_s(), t0 = now_s();
        if (qt_session_step(&s, lr, 0, &r) != QT_EXIT_OK)
            goto out;
        double t1 = now_s();
        cpu += cpu_s() - c0;
        wall += t1 - t0;
        ms[i] = 1e3 * (t1 - t0);
        last_loss = r.loss;
        if (do_profile && profiled_step(&s, &pf, step_lr(c, total, s.step), phs[i], phc[i])) {
            fprintf(stderr, "bench_train: profiled step failed: %s\n", ag_tape_error(s.tape));
            goto out;
        }
        if (do_sgemm)
            sgemm_round(&sg_b);
    }
    stats st = summarize(ms, steps);
    double gflops = fl.total / (st.median * 1e-3) * 1e-9;

    printf("\nFLOPs per step (analytic): 6*P*B*T + 12*L*B*T^2*C\n"
           "  P = L*(4*C^2 + 2*C*F) + V*C = %.0f weights used in matmuls (LM head counted once "
           "even when tied)\n"
           "  6*P*B*T      = %8.3f GFLOP  linear layers, forward 2*P*N + backward 4*P*N\n"
           "  12*L*B*T^2*C = %8.3f GFLOP  attention QK^T and PV, fwd + bwd, the FULL T x T "
           "counted (the causal half is not skipped in the count)\n"
           "  total        = %8.3f GFLOP  (norms, GELU, softmax, AdamW not counted)\n",
           fl.mm_params, fl.linear * 1e-9, fl.attention * 1e-9, fl.total * 1e-9);

    printf("\ntimed: %d steps through qt_session_step after %d warm-up (last loss %.4f)\n", steps,
           warmup, last_loss);
    printf("  ms/step   median %.1f  mean %.1f  min %.1f  max %.1f\n", st.median, st.mean, st.min,
           st.max);
    printf("  tokens/s  %.0f (median step)\n", tokens / (st.median * 1e-3));
    printf("  achieved  %.1f GFLOP/s (model FLOPs / median step)\n", gflops);
    printf("  CPU use   %.2f of %d threads (process CPU time / wall time over the timed steps; "
           "< %d: busy machine, or threads idle in serial code)\n",
           cpu / wall, nt, nt);
    printf("  CPU time  %.1f ms per step (all threads; less sensitive to the machine's load than "
           "wall time, but spinning threads count)\n",
           1e3 * cpu / steps);

    double sg = 0;
    if (do_sgemm) {
        sg = sgemm_report(&sg_b);
        printf("  achieved / sgemm = %.1f%%  (target >= 50%%)\n", 100 * gflops / sg);
    }

    if (do_profile) {
        printf("\nphases: %d more steps through an instrumented copy of qt_session_step, each "
               "right after a timed one%s\n",
               steps,
               replica_ok ? " (checked: bit-identical loss and gradients)" : " (NOT identical!)");
        printf("  %-18s %9s %9s %7s %7s\n", "phase", "median", "mean", "share", "busy");
        double ph_med[P_COUNT], ph_mean[P_COUNT], ph_cpu[P_COUNT], tot_mean = 0, sum_med = 0;
        for (int p = 0; p < P_COUNT; p++) {
            ph_cpu[p] = 0;
            for (int i = 0; i < steps; i++) {
                ms[i] = 1e3 * phs[i][p]; /* ms[] is free again: reused as scratch */
                ph_cpu[p] += 1e3 * phc[i][p] / steps;
            }
            stats ps = summarize(ms, steps);
            ph_med[p] = ps.median;
            ph_mean[p] = ps.mean;
            sum_med += ps.median;
            tot_mean += ps.mean;
        }
        for (int p = 0; p < P_COUNT; p++)
            printf("  %-18s %9.2f %9.2f %6.1f%% %7.2f\n", phase_name[p], ph_med[p], ph_mean[p],
                   100 * ph_mean[p] / tot_mean, ph_mean[p] > 0 ? ph_cpu[p] / ph_mean[p] : 0);
        printf("  %-18s %9.2f %9.2f   (qt_session_step above: median %.2f, mean %.2f)\n", "sum",
               sum_med, tot_mean, st.median, st.mean);
        printf(
            "  busy = process CPU time / wall time: threads kept busy (a spinning thread counts; "
            "< %d on an idle machine = serial code or idle threads)\n",
            nt);
        printf(
            "  bwd: grad buffers = ag_backward_prepare: %.1f MB of arena gradients (every recorded "
            "tensor), zero-filled unless their first writer assigns them\n",
            (double)pf.grad_bytes / 1e6);

        double per = 1e3 / steps; /* seconds summed over steps -> ms per step */
        double N = tokens, C = m->C, F = m->F, V = m->V, L = m->L;
        double g_role[R_COUNT] = {0};
        g_role[R_QKV] = 6 * 3 * L * C * C * N * 1e-9;
        g_role[R_WO] = 6 * L * C * C * N * 1e-9;
        g_role[R_UP] = 6 * L * C * F * N * 1e-9;
        g_role[R_DOWN] = 6 * L * F * C * N * 1e-9;
        g_role[R_HEAD] = 6 * V * C * N * 1e-9;
        g_role[R_ATTN] = fl.attention * 1e-9;
        printf("\nops by role (mean ms per step over the same steps; GFLOP/s on the analytic "
               "FLOPs, attention counting the full T x T):\n");
        printf("  %-16s %9s %9s %9s %7s %6s %8s %9s\n", "role", "fwd ms", "bwd ms", "total",
               "share", "busy", "GFLOP", "GFLOP/s");
        double fsum = 0, bsum = 0, csum = 0;
        for (int r = 0; r < R_COUNT; r++) {
            if (pf.fwd[r] == 0 && pf.bwd[r] == 0)
                continue;
            print_row(role_name[r], pf.fwd[r] * per, pf.bwd[r] * per, pf.cpu[r] * per, g_role[r],
                      tot_mean);
            fsum += pf.fwd[r] * per;
            bsum += pf.bwd[r] * per;
            csum += pf.cpu[r] * per;
        }
        print_row("all ops", fsum, bsum, csum, 0, tot_mean);
        double lin_ms = 0, lin_g = 0;
        int lin_roles[5] = {R_QKV, R_WO, R_UP, R_DOWN, R_HEAD};
        for (int i = 0; i < 5; i++) {
            lin_ms += (pf.fwd[lin_roles[i]] + pf.bwd[lin_roles[i]]) * per;
            lin_g += g_role[lin_roles[i]];
        }
        printf("  weight matmuls together: %.2f ms/step = %.1f%% of the step, %.1f GFLOP/s", lin_ms,
               100 * lin_ms / tot_mean, lin_g / lin_ms * 1e3);
        if (sg > 0)
            printf(" (%.0f%% of the sgemm rate above)", 100 * lin_g / lin_ms * 1e3 / sg);
        printf("\n  everything else: %.2f ms/step\n", tot_mean - lin_ms);
    }
    print_loadavg("end");
    printf("RESULT impl=qat threads=%d B=%d T=%d ms_median=%.2f ms_mean=%.2f tokens_per_s=%.1f "
           "cpu_ms_per_step=%.1f gflop_step=%.3f gflops=%.2f sgemm_gflops=%.2f cpu_use=%.2f "
           "peak_rss_mib=%.1f\n",
           nt, B, T, st.median, st.mean, tokens / (st.median * 1e-3), 1e3 * cpu / steps,
           fl.total * 1e-9, gflops, sg, cpu / wall, qt_peak_rss_mb());
    rc = 0;
out:
    if (open)
        qt_session_close(&s);
    if (dir[0])
        remove_out_dir(dir);
    free(pf.tag);
    sgemm_free(&sg_b);
    free(ms);
    free(phs);
    free(phc);
    free(sets);
    return rc;
}
