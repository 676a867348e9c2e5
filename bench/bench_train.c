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
#include "bench/lib/bench_util.h"
#include "bench/lib/sgemm_ceiling.h"
#include "bench/lib/step_profile.h"
#include "optim/opt.h"
#include "train/model/gpt.h"
#include "train/run/progress.h"
#include "train/run/session.h"

#include <cblas.h>
#include <omp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_STEPS 100000

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
    double *ms = NULL, (*phs)[BENCH_PHASE_COUNT] = NULL, (*phc)[BENCH_PHASE_COUNT] = NULL;
    qt_session s;
    bool open = false;
    bench_prof pf = {0};
    bench_sgemm sg_b = {0};
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
        double lr = bench_step_lr(c, total, s.step);
        if (qt_session_step(&s, lr, 0, &r) != QT_EXIT_OK)
            goto out;
    }
    printf("step arena after warm-up: %.1f MB peak\n",
           (double)ag_arena_peak(ag_tape_arena(s.tape)) / 1e6);

    bench_mm_shape sh[BENCH_SG_SHAPES];
    int n_sh = bench_sgemm_model_shapes(m, sh);
    if (do_sgemm && bench_sgemm_init(&sg_b, sh, n_sh, B * T, steps) != 0) {
        fprintf(stderr, "bench_train: out of memory for the sgemm measurement\n");
        goto out;
    }
    bool replica_ok = false;
    if (do_profile) {
        if (bench_prof_init(&pf, s.tape) != 0)
            goto out;
        replica_ok = bench_replica_matches(&s, &pf);
    }

    /* Timed step, then (untimed by it) one profiled step and one sgemm round: all three see the
     * same load, which drifts a lot on a shared machine. */
    double cpu = 0, wall = 0, last_loss = 0;
    for (int i = 0; i < steps; i++) {
        qt_step_result r;
        double lr = bench_step_lr(c, total, s.step);
        double c0 = bench_cpu_s(), t0 = bench_now_s();
        if (qt_session_step(&s, lr, 0, &r) != QT_EXIT_OK)
            goto out;
        double t1 = bench_now_s();
        cpu += bench_cpu_s() - c0;
        wall += t1 - t0;
        ms[i] = 1e3 * (t1 - t0);
        last_loss = r.loss;
        if (do_profile &&
            bench_profiled_step(&s, &pf, bench_step_lr(c, total, s.step), phs[i], phc[i])) {
            fprintf(stderr, "bench_train: profiled step failed: %s\n", ag_tape_error(s.tape));
            goto out;
        }
        if (do_sgemm)
            bench_sgemm_round(&sg_b);
    }
    bench_stats st = bench_summarize(ms, steps);
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
        sg = bench_sgemm_report(&sg_b);
        printf("  achieved / sgemm = %.1f%%  (target >= 50%%)\n", 100 * gflops / sg);
    }

    if (do_profile) {
        printf("\nphases: %d more steps through an instrumented copy of qt_session_step, each "
               "right after a timed one%s\n",
               steps,
               replica_ok ? " (checked: bit-identical loss and gradients)" : " (NOT identical!)");
        printf("  %-18s %9s %9s %7s %7s\n", "phase", "median", "mean", "share", "busy");
        double ph_med[BENCH_PHASE_COUNT], ph_mean[BENCH_PHASE_COUNT], ph_cpu[BENCH_PHASE_COUNT],
            tot_mean = 0, sum_med = 0;
        for (int p = 0; p < BENCH_PHASE_COUNT; p++) {
            ph_cpu[p] = 0;
            for (int i = 0; i < steps; i++) {
                ms[i] = 1e3 * phs[i][p]; /* ms[] is free again: reused as scratch */
                ph_cpu[p] += 1e3 * phc[i][p] / steps;
            }
            bench_stats ps = bench_summarize(ms, steps);
            ph_med[p] = ps.median;
            ph_mean[p] = ps.mean;
            sum_med += ps.median;
            tot_mean += ps.mean;
        }
        for (int p = 0; p < BENCH_PHASE_COUNT; p++)
            printf("  %-18s %9.2f %9.2f %6.1f%% %7.2f\n", bench_phase_name(p), ph_med[p],
                   ph_mean[p], 100 * ph_mean[p] / tot_mean,
                   ph_mean[p] > 0 ? ph_cpu[p] / ph_mean[p] : 0);
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
        double g_role[BENCH_ROLE_COUNT] = {0};
        g_role[BENCH_ROLE_QKV] = 6 * 3 * L * C * C * N * 1e-9;
        g_role[BENCH_ROLE_WO] = 6 * L * C * C * N * 1e-9;
        g_role[BENCH_ROLE_UP] = 6 * L * C * F * N * 1e-9;
        g_role[BENCH_ROLE_DOWN] = 6 * L * F * C * N * 1e-9;
        g_role[BENCH_ROLE_HEAD] = 6 * V * C * N * 1e-9;
        g_role[BENCH_ROLE_ATTN] = fl.attention * 1e-9;
        printf("\nops by role (mean ms per step over the same steps; GFLOP/s on the analytic "
               "FLOPs, attention counting the full T x T):\n");
        printf("  %-16s %9s %9s %9s %7s %6s %8s %9s\n", "role", "fwd ms", "bwd ms", "total",
               "share", "busy", "GFLOP", "GFLOP/s");
        double fsum = 0, bsum = 0, csum = 0;
        for (int r = 0; r < BENCH_ROLE_COUNT; r++) {
            if (pf.fwd[r] == 0 && pf.bwd[r] == 0)
                continue;
            print_row(bench_role_name(r), pf.fwd[r] * per, pf.bwd[r] * per, pf.cpu[r] * per,
                      g_role[r], tot_mean);
            fsum += pf.fwd[r] * per;
            bsum += pf.bwd[r] * per;
            csum += pf.cpu[r] * per;
        }
        print_row("all ops", fsum, bsum, csum, 0, tot_mean);
        double lin_ms = 0, lin_g = 0;
        int lin_roles[5] = {BENCH_ROLE_QKV, BENCH_ROLE_WO, BENCH_ROLE_UP, BENCH_ROLE_DOWN,
                            BENCH_ROLE_HEAD};
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
    bench_prof_free(&pf);
    bench_sgemm_free(&sg_b);
    free(ms);
    free(phs);
    free(phc);
    free(sets);
    return rc;
}
