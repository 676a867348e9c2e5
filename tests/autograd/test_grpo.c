/* test_grpo.c — ag_grpo_loss and ag_token_logprobs: a hand-worked case for every aggregation,
 * with and without clipping and KL, against numbers derived in the comments and against a slow
 * straightforward reference; double-precision gradient checks over the whole option grid; the
 * zero gradient and the statistics of clipped tokens; the ratio-1 (mu = 1) case bit for bit and
 * against its closed form; rejection of bad input; f32 against f64; thread-count invariance;
 * and that the caller's arrays may change between forward and backward. */
#include "agtest.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define LN2 0.69314718055994530942
#define LN3 1.09861228866810969140

/* ---- helpers ----------------------------------------------------------------------------------
 */

static ag_tape *new_tape(void) { return ag_tape_create(1 << 20, 0, 64); }

/* Heap tensor of dtype d holding vals, requiring grad, with a zeroed grad buffer; free with rm. */
static ag_tensor *mk(ag_dtype d, int ndim, const int64_t *shape, const double *vals) {
    ag_tensor *t = malloc(sizeof *t);
    ag_tensor_wrap(t, d, NULL, NULL, ndim, shape);
    size_t es = ag_dtype_size(d), n = t->numel ? t->numel : 1;
    t->data = malloc(n * es);
    t->grad = calloc(n, es);
    for (size_t i = 0; i < t->numel; i++) {
        if (d == AG_F32)
            ((float *)t->data)[i] = (float)vals[i];
        else
            ((double *)t->data)[i] = vals[i];
    }
    t->requires_grad = true;
    return t;
}

static void rm(ag_tensor *t) {
    if (!t)
        return;
    free(t->data);
    free(t->grad);
    free(t);
}

static void zero_grad(ag_tensor *t) { memset(t->grad, 0, t->numel * ag_dtype_size(t->dtype)); }

static double get(const ag_tensor *t, const void *buf, size_t i) {
    return t->dtype == AG_F32 ? ((const float *)buf)[i] : ((const double *)buf)[i];
}

/* Uniform values in [lo, hi). */
static void fill(double *v, size_t n, double lo, double hi, uint64_t seed) {
    for (size_t i = 0; i < n; i++)
        v[i] = tu_uniform(&seed, lo, hi);
}

/* Loss value of one call (NULL fails the test); backward with seed 1 when grads are wanted. */
static double run(ag_tensor *x, const int32_t *tg, const ag_grpo_spec *s, ag_grpo_stats *st,
                  bool backward) {
    ag_tape *t = new_tape();
    ag_tensor *loss = ag_grpo_loss(t, x, tg, s, st);
    assert_non_null(loss);
    assert_int_equal(loss->ndim, 0);
    double v = get(loss, loss->data, 0);
    if (backward)
        assert_int_equal(ag_backward(t, loss, NULL), 0);
    ag_tape_free(t);
    return v;
}

/* The slow reference: the contract of ag.h written out loop by loop, in double, with a naive
 * log-sum-exp (the test logits are small). Fills dlogp[r] = dloss/dlogp_r (0 where ignored). */
static double ref_grpo(const double *x, const int32_t *tg, size_t R, size_t V,
                       const ag_grpo_spec *s, double *dlogp) {
    size_t N = (size_t)s->n_seq, T = R / N, n_all = 0, n_seq[16] = {0};
    double sum_all = 0, mean_of_means = 0;
    for (size_t i = 0; i < N; i++) {
        double sum = 0;
        for (size_t r = i * T; r < (i + 1) * T; r++) {
            dlogp[r] = 0;
            if (tg[r] < 0)
                continue;
            double z = 0;
            for (size_t v = 0; v < V; v++)
                z += exp(x[r * V + v]);
            double logp = x[r * V + (size_t)tg[r]] - log(z);
            double old = s->old_logp ? s->old_logp[r] : logp, A = s->adv[i];
            double ratio = exp(logp - old);
            double c = fmax(1 - s->eps_low, fmin(1 + s->eps_high, ratio));
            double kl = 0, dkl = 0;
            if (s->ref_logp && s->beta > 0) {
                double d = s->ref_logp[r] - logp;
                kl = exp(d) - d - 1;
                dkl = 1 - exp(d);
            }
            sum += -(fmin(ratio * A, c * A) - s->beta * kl);
            dlogp[r] = (ratio * A <= c * A ? -ratio * A : 0) + s->beta * dkl;
            n_seq[i]++;
        }
        mean_of_means += n_seq[i] ? sum / (double)n_seq[i] : 0;
        sum_all += sum;
        n_all += n_seq[i];
    }
    for (size_t r = 0; r < R; r++) {
        size_t i = r / T;
        if (s->agg == AG_GRPO_SEQ_MEAN)
            dlogp[r] = n_seq[i] ? dlogp[r] / (double)(N * n_seq[i]) : 0;
        else if (s->agg == AG_GRPO_CONST_NORM)
            dlogp[r] /= (double)N * (double)s->max_len;
        else
            dlogp[r] = n_all ? dlogp[r] / (double)n_all : 0;
    }
    if (s->agg == AG_GRPO_SEQ_MEAN)
        return mean_of_means / (double)N;
    if (s->agg == AG_GRPO_CONST_NORM)
        return sum_all / ((double)N * (double)s->max_len);
    return n_all ? sum_all / (double)n_all : 0;
}

/* The gradient the contract implies: dloss/dlogits_r = dlogp_r·(onehot − softmax), in double. */
static void ref_grad(const double *x, const int32_t *tg, const double *dlogp, size_t R, size_t V,
                     double *g) {
    for (size_t r = 0; r < R; r++) {
        double z = 0;
        for (size_t v = 0; v < V; v++)
            z += exp(x[r * V + v]);
        for (size_t v = 0; v < V; v++)
            g[r * V + v] =
                tg[r] < 0 ? 0 : dlogp[r] * ((v == (size_t)tg[r]) - exp(x[r * V + v]) / z);
    }
}

/* ---- 1. the hand-worked case ---------------------------------------------------------------- */

/* N = 2 sequences, T = 3, V = 3. Logits are logs of small integers, so softmax = integer / sum:
 *   row 0 [0, 0, ln2]  target 2: p = 2/4 = 1/2   old = ln 1/4 → ratio 2     ref = ln 1/2
 *   row 1 [0, ln2, 0]  target 0: p = 1/4         old = ln 1/2 → ratio 1/2   ref = ln 1/2
 *   row 2 [0, 0, 0]    target 1: p = 1/3         old = ln 1/3 → ratio 1     ref = ln 1/3
 *   row 3 [ln2, 0, 0]  target 0: p = 1/2         old = ln 1/4 → ratio 2     ref = ln 1/4
 *   row 4 [0, 0, ln2]  target 0: p = 1/4         old = ln 1/2 → ratio 1/2   ref = ln 1/4
 *   row 5 [5, -3, 1]   target -1: ignored (its old and ref are NaN: they must not be read)
 * A = [+1, −2]; eps_low = eps_high = 0.2, so the range is [0.8, 1.2].
 * Surrogates s = min(ratio·A, clamp(ratio)·A):
 *   row 0: min(2, 1.2) = 1.2 (clipped high)   row 1: min(0.5, 0.8) = 0.5   row 2: 1
 *   row 3: min(−4, −2.4) = −4                 row 4: min(−1, −1.6) = −1.6 (clipped low)
 * beta = 0: token losses −s: seq 0 sums to −2.7 over 3 tokens, seq 1 to 5.6 over 2.
 *   grpo    = (−2.7/3 + 5.6/2)/2 = (−0.9 + 2.8)/2 = 0.95
 *   dr_grpo = (−2.7 + 5.6)/(2·max_len 4) = 2.9/8 = 0.3625
 *   dapo    = 2.9/5 = 0.58
 * No clipping (eps = 1e9): s = ratio·A: seq 0 losses −2, −0.5, −1 (sum −3.5), seq 1: 4, 1 (5).
 *   grpo = (−3.5/3 + 5/2)/2 = 2/3;  dr_grpo = 1.5/8 = 0.1875;  dapo = 1.5/5 = 0.3
 * KL (k3 with q = ref/p): row 0 q = 1 → 0; row 1 q = 2 → 2 − ln2 − 1 = 1 − ln2; row 2: 0;
 *   row 3 q = 1/2 → 1/2 + ln2 − 1 = ln2 − 1/2; row 4: 0. Seq 0 KL sum 1 − ln2, seq 1 ln2 − 1/2,
 *   total exactly 1/2 (mean 0.1). With beta = 0.1 each token loss gains 0.1·kl:
 *   clipped:  grpo = ((−2.7 + 0.1(1 − ln2))/3 + (5.6 + 0.1(ln2 − 0.5))/2)/2 = 0.95994289317...
 *             dr_grpo = (2.9 + 0.05)/8 = 0.36875;  dapo = 2.95/5 = 0.59
 *   no clip:  grpo = ((−3.5 + 0.1(1 − ln2))/3 + (5 + 0.1(ln2 − 0.5))/2)/2 = 0.67660955983...
 *             dr_grpo = 1.55/8 = 0.19375;  dapo = 1.55/5 = 0.31 */
static const double HAND_X[18] = {0, 0, LN2, 0, LN2, 0, 0, 0, 0, LN2, 0, 0, 0, 0, LN2, 5, -3, 1};
static const int32_t HAND_TG[6] = {2, 0, 1, 0, 0, -1};
static const double HAND_ADV[2] = {1, -2};

static void hand_arrays(double *old, double *ref) {
    const double o[6] = {log(0.25), log(0.5), -LN3, log(0.25), log(0.5), NAN};
    const double r[6] = {log(0.5), log(0.5), -LN3, log(0.25), log(0.25), NAN};
    memcpy(old, o, sizeof o);
    memcpy(ref, r, sizeof r);
}

static ag_grpo_spec hand_spec(const double *old, const double *ref, ag_grpo_agg agg, double eps,
                              double beta) {
    return (ag_grpo_spec){.adv = HAND_ADV,
                          .old_logp = old,
                          .ref_logp = ref,
                          .eps_low = eps,
                          .eps_high = eps,
                          .beta = beta,
                          .agg = agg,
                          .max_len = 4,
                          .n_seq = 2};
}

static void test_grpo_hand_case(void **state) {
    (void)state;
    /* want[clip off/on][beta 0/0.1][agg], from the comment above */
    const double want[2][2][3] = {
        {{2.0 / 3, 0.1875, 0.3}, {0.67660955983799960, 0.19375, 0.31}},
        {{0.95, 0.3625, 0.58}, {0.95994289317133270, 0.36875, 0.59}},
    };
    double old[6], ref[6], dl[6];
    hand_arrays(old, ref);
    for (int d = 0; d < 2; d++)
        for (int clip = 0; clip < 2; clip++)
            for (int b = 0; b < 2; b++)
                for (int agg = 0; agg < 3; agg++) {
                    ag_tensor *x = mk(d ? AG_F64 : AG_F32, 3, (int64_t[3]){2, 3, 3}, HAND_X);
                    ag_grpo_spec s =
                        hand_spec(old, ref, (ag_grpo_agg)agg, clip ? 0.2 : 1e9, b ? 0.1 : 0.0);
                    ag_grpo_stats st;
                    double loss = run(x, HAND_TG, &s, &st, false);
                    double tol = d ? 1e-14 : 1e-6;
                    assert_close(loss, want[clip][b][agg], tol, tol);
                    assert_close(loss, ref_grpo(HAND_X, HAND_TG, 6, 3, &s, dl), tol, tol);
                    /* ref is given in every case: the KL statistic is reported even at beta 0 */
                    assert_int_equal(st.n_valid, 5);
                    assert_close(st.kl_mean, 0.1, tol, tol);
                    assert_close(st.ratio_mean, 6.0 / 5, tol, tol); /* (2 + .5 + 1 + 2 + .5)/5 */
                    assert_close(st.clip_frac, clip ? 0.4 : 0, 0, 0);
                    assert_close(st.clip_high_frac, clip ? 0.2 : 0, 0, 0);
                    assert_close(st.clip_low_frac, clip ? 0.2 : 0, 0, 0);
                    rm(x);
                }
}

/* ---- 2. finite-difference gradient checks --------------------------------------------------- */

typedef struct gc_args {
    const int32_t *tg;
    const ag_grpo_spec *spec;
} gc_args;

static ag_tensor *build_grpo(ag_tape *t, ag_tensor **in, void *ctx) {
    const gc_args *a = ctx;
    return ag_grpo_loss(t, in[0], a->tg, a->spec, NULL);
}

/* old = logp − d, d cycling through 0.6, −0.1, −0.6, 0.1: ratios 1.82, 0.905, 0.549, 1.105, each
 * at least 0.09 from the clip bounds 0.8 and 1.2 (min is not differentiable there). ref =
 * logp + u, u uniform in [−0.5, 0.5). logp comes from the op's own ag_token_logprobs. */
static void policy_arrays(const ag_tensor *x, const int32_t *tg, double *old, double *ref,
                          uint64_t seed) {
    const double d[4] = {0.6, -0.1, -0.6, 0.1};
    size_t R = ag_rows(x);
    assert_int_equal(ag_token_logprobs(x, tg, old), 0);
    fill(ref, R, -0.5, 0.5, seed);
    for (size_t r = 0; r < R; r++) {
        ref[r] += old[r];
        old[r] -= d[r % 4];
    }
}

static void test_grpo_gradcheck(void **state) {
    (void)state;
    const int32_t tg[8] = {3, -1, 0, 4, 1, 2, 3, -1};
    const double adv[2] = {1.3, -0.7};
    double vals[40], old[8], ref[8];
    fill(vals, 40, -2, 2, 7);
    for (int shape = 0; shape < 2; shape++) {
        ag_tensor *x = shape ? mk(AG_F64, 2, (int64_t[2]){8, 5}, vals)
                             : mk(AG_F64, 3, (int64_t[3]){2, 4, 5}, vals);
        free(x->grad); /* ag_gradcheck brings its own */
        x->grad = NULL;
        policy_arrays(x, tg, old, ref, 8);
        for (int agg = 0; agg < 3; agg++)
            for (int b = 0; b < 2; b++)
                for (int clip = 0; clip < 2; clip++) {
                    ag_grpo_spec s = {.adv = adv,
                                      .old_logp = old,
                                      .ref_logp = ref,
                                      .eps_low = clip ? 0.2 : 10,
                                      .eps_high = clip ? 0.2 : 10,
                                      .beta = b ? 0.1 : 0,
                                      .agg = (ag_grpo_agg)agg,
                                      .max_len = 5,
                                      .n_seq = 2};
                    /* the grid really covers clipped and unclipped tokens */
                    ag_grpo_stats st;
                    run(x, tg, &s, &st, false);
                    assert_true(clip ? st.clip_low_frac > 0 && st.clip_high_frac > 0
                                     : st.clip_frac == 0);
                    char what[64];
                    snprintf(what, sizeof what, "grpo %dD agg %d beta %g clip %d", 3 - shape, agg,
                             s.beta, clip);
                    gc_args a = {tg, &s};
                    agt_gradcheck(what, build_grpo, &a, &x, 1);
                }
        rm(x);
    }
}

/* ---- 3. clipped tokens: zero gradient, counted -------------------------------------------- */

static void test_grpo_clipped_tokens_zero_grad(void **state) {
    (void)state;
    double old[6], ref[6], dl[6], g[18];
    hand_arrays(old, ref);
    for (int d = 0; d < 2; d++)
        for (int agg = 0; agg < 3; agg++) {
            ag_tensor *x = mk(d ? AG_F64 : AG_F32, 2, (int64_t[2]){6, 3}, HAND_X);
            ag_grpo_spec s = hand_spec(old, ref, (ag_grpo_agg)agg, 0.2, 0);
            ag_grpo_stats st;
            run(x, HAND_TG, &s, &st, true);
            /* rows 0 (clipped high) and 4 (clipped low) and 5 (ignored): exactly 0 */
            for (size_t r = 0; r < 6; r++)
                for (size_t v = 0; v < 3; v++) {
                    double gv = get(x, x->grad, r * 3 + v);
                    if (r == 0 || r == 4 || r == 5)
                        assert_true(gv == 0.0);
                    else
                        assert_true(gv != 0.0);
                }
            assert_close(st.clip_frac, 2.0 / 5, 0, 0);
            assert_close(st.clip_high_frac, 1.0 / 5, 0, 0);
            assert_close(st.clip_low_frac, 1.0 / 5, 0, 0);
            /* the other rows: the reference gradient */
            ref_grpo(HAND_X, HAND_TG, 6, 3, &s, dl);
            ref_grad(HAND_X, HAND_TG, dl, 6, 3, g);
            for (size_t i = 0; i < 18; i++)
                assert_close(get(x, x->grad, i), g[i], d ? 1e-15 : 1e-7, d ? 1e-13 : 1e-6);
            rm(x);
        }
}

/* ---- 4. old_logp NULL vs old_logp from ag_token_logprobs ---------------------------------- */

/* Loss bytes of one call and its gradient (into x->grad, zeroed first). */
static void loss_bytes(ag_tensor *x, const int32_t *tg, const ag_grpo_spec *s, void *out) {
    zero_grad(x);
    ag_tape *t = new_tape();
    ag_tensor *loss = ag_grpo_loss(t, x, tg, s, NULL);
    assert_non_null(loss);
    memcpy(out, loss->data, ag_dtype_size(x->dtype));
    assert_int_equal(ag_backward(t, loss, NULL), 0);
    ag_tape_free(t);
}

static void test_grpo_old_null_matches_token_logprobs(void **state) {
    (void)state;
    enum { N = 3, T = 5, V = 17, R = N * T };
    int32_t tg[R];
    double vals[R * V], ref[R], old[R], naive[R];
    const double adv[N] = {0.8, -1.1, 0.3};
    fill(vals, R * V, -4, 4, 31);
    fill(ref, R, -4, -2, 32);
    for (int r = 0; r < R; r++)
        tg[r] = r % 4 == 3 ? -1 : (r * 7) % V;
    for (int d = 0; d < 2; d++) {
        ag_tensor *x = mk(d ? AG_F64 : AG_F32, 3, (int64_t[3]){N, T, V}, vals);
        assert_int_equal(ag_token_logprobs(x, tg, old), 0);
        for (int r = 0; r < R; r++) {
            double z = 0;
            for (int v = 0; v < V; v++)
                z += exp(vals[r * V + v]);
            naive[r] = tg[r] < 0 ? 0 : vals[r * V + tg[r]] - log(z);
            assert_close(old[r], naive[r], d ? 1e-14 : 2e-6, d ? 1e-14 : 1e-6);
        }
        size_t nb = (size_t)R * V * ag_dtype_size(x->dtype);
        void *g_null = malloc(nb);
        for (int agg = 0; agg < 3; agg++)
            for (int b = 0; b < 2; b++) {
                ag_grpo_spec s = {.adv = adv,
                                  .ref_logp = ref,
                                  .eps_low = 0.2,
                                  .eps_high = 0.28,
                                  .beta = b ? 0.1 : 0,
                                  .agg = (ag_grpo_agg)agg,
                                  .max_len = 7,
                                  .n_seq = N};
                double l_null = 0, l_old = 0;
                loss_bytes(x, tg, &s, &l_null);
                memcpy(g_null, x->grad, nb);
                s.old_logp = old;
                loss_bytes(x, tg, &s, &l_old);
                assert_memory_equal(&l_null, &l_old, ag_dtype_size(x->dtype));
                assert_memory_equal(g_null, x->grad, nb);
                ag_grpo_stats st;
                run(x, tg, &s, &st, false);
                assert_true(st.ratio_mean == 1.0 && st.clip_frac == 0.0);
            }
        free(g_null);
        rm(x);
    }
}

/* ---- 5. ratio 1, beta 0, one advantage: the closed form ----------------------------------- */

/* With ratio ≡ 1 inside the range every token loss is −A and dloss/dlogits_r =
 * −A·(onehot − softmax)/norm, norm = N·n_i (grpo), N·max_len (dr_grpo), n_valid (dapo). Sequence
 * 2 has no valid token: grpo's loss is then −A·(N − 1)/N, since the empty sequence still counts. */
static void test_grpo_ratio_one_closed_form(void **state) {
    (void)state;
    enum { N = 3, T = 4, V = 6, R = N * T };
    const int32_t tg[R] = {1, 5, -1, 0, 2, 2, 3, 4, -1, -1, -1, -1};
    const size_t n_i[N] = {3, 4, 0}, n_valid = 7;
    const double A = 0.7, adv[N] = {A, A, A};
    double vals[R * V];
    fill(vals, R * V, -3, 3, 41);
    const double want_loss[3] = {-A * 2 / 3, -A * 7 / (3.0 * 9), -A};
    for (int agg = 0; agg < 3; agg++) {
        ag_tensor *x = mk(AG_F64, 2, (int64_t[2]){R, V}, vals);
        ag_grpo_spec s = {.adv = adv,
                          .eps_low = 0.2,
                          .eps_high = 0.2,
                          .agg = (ag_grpo_agg)agg,
                          .max_len = 9,
                          .n_seq = N};
        assert_close(run(x, tg, &s, NULL, true), want_loss[agg], 1e-15, 1e-14);
        for (size_t r = 0; r < R; r++) {
            size_t i = r / T;
            double norm = agg == 0 ? N * (double)n_i[i] : agg == 1 ? N * 9.0 : (double)n_valid;
            double z = 0;
            for (size_t v = 0; v < V; v++)
                z += exp(vals[r * V + v]);
            for (size_t v = 0; v < V; v++) {
                double want =
                    tg[r] < 0 ? 0 : -A * ((v == (size_t)tg[r]) - exp(vals[r * V + v]) / z) / norm;
                assert_close(((double *)x->grad)[r * V + v], want, 1e-15, 1e-12);
            }
        }
        rm(x);
    }
}

/* ---- 6. bad input ------------------------------------------------------------------------- */

static void test_grpo_rejects_bad_input(void **state) {
    (void)state;
    double vals[18], old[6];
    fill(vals, 18, -1, 1, 51);
    ag_tensor *x3 = mk(AG_F64, 3, (int64_t[3]){2, 3, 3}, vals);
    ag_tensor *x2 = mk(AG_F64, 2, (int64_t[2]){6, 3}, vals);
    ag_tensor *x1 = mk(AG_F64, 1, (int64_t[1]){18}, vals);
    const int32_t tg[6] = {0, 1, 2, -1, 0, 1}, tg_big[6] = {0, 1, 3, -1, 0, 1};
    const ag_grpo_spec ok = hand_spec(NULL, NULL, AG_GRPO_CONST_NORM, 0.2, 0.1);
    ag_tape *t = new_tape();
    assert_non_null(ag_grpo_loss(t, x3, tg, &ok, NULL));
    assert_non_null(ag_grpo_loss(t, x2, tg, &ok, NULL));
    ag_tape_reset(t);
    ag_grpo_spec s = ok;
    assert_null(ag_grpo_loss(t, x3, tg_big, &ok, NULL)); /* target == V */
    assert_null(ag_grpo_loss(t, x3, NULL, &ok, NULL));
    assert_null(ag_grpo_loss(t, NULL, tg, &ok, NULL));
    assert_null(ag_grpo_loss(t, x3, tg, NULL, NULL));
    assert_null(ag_grpo_loss(t, x1, tg, &ok, NULL)); /* 1-D */
    s.adv = NULL;
    assert_null(ag_grpo_loss(t, x3, tg, &s, NULL));
    s = ok, s.n_seq = 0;
    assert_null(ag_grpo_loss(t, x2, tg, &s, NULL));
    s.n_seq = 4; /* does not divide 6 rows */
    assert_null(ag_grpo_loss(t, x2, tg, &s, NULL));
    s.n_seq = 3; /* divides, but [2,3,3] says 2 sequences */
    assert_null(ag_grpo_loss(t, x3, tg, &s, NULL));
    s = ok, s.eps_low = -0.1;
    assert_null(ag_grpo_loss(t, x3, tg, &s, NULL));
    s = ok, s.eps_high = -0.1;
    assert_null(ag_grpo_loss(t, x3, tg, &s, NULL));
    s = ok, s.eps_high = NAN;
    assert_null(ag_grpo_loss(t, x3, tg, &s, NULL));
    s = ok, s.beta = -1e-3;
    assert_null(ag_grpo_loss(t, x3, tg, &s, NULL));
    s = ok, s.agg = (ag_grpo_agg)3;
    assert_null(ag_grpo_loss(t, x3, tg, &s, NULL));
    s = ok, s.max_len = 0; /* dr_grpo needs its constant... */
    assert_null(ag_grpo_loss(t, x3, tg, &s, NULL));
    assert_int_equal(ag_tape_size(t), 0);
    s.agg = AG_GRPO_SEQ_MEAN; /* ...the others ignore it */
    assert_non_null(ag_grpo_loss(t, x3, tg, &s, NULL));
    assert_int_equal(ag_token_logprobs(x3, tg_big, old), -1);
    assert_int_equal(ag_token_logprobs(x1, tg, old), -1);
    assert_int_equal(ag_token_logprobs(NULL, tg, old), -1);
    assert_int_equal(ag_token_logprobs(x3, tg, NULL), -1);
    ag_tape_free(t);
    /* A full arena makes the op return NULL with the arena's error. */
    t = ag_tape_create(256, 320, 8);
    assert_null(ag_grpo_loss(t, x3, tg, &ok, NULL));
    assert_non_null(strstr(ag_tape_error(t), "arena full"));
    ag_tape_free(t);
    rm(x1);
    rm(x2);
    rm(x3);
}

/* ---- 7. f32 against f64 ------------------------------------------------------------------- */

static void test_grpo_f32_matches_f64(void **state) {
    (void)state;
    enum { N = 4, T = 8, V = 33, R = N * T };
    int32_t tg[R];
    double vals[R * V], old[R], ref[R];
    const double adv[N] = {1.5, -0.4, 0.9, -2.0};
    fill(vals, R * V, -3, 3, 61);
    for (int r = 0; r < R; r++)
        tg[r] = r % 5 == 4 ? -1 : (r * 11) % V;
    ag_tensor *x64 = mk(AG_F64, 3, (int64_t[3]){N, T, V}, vals);
    ag_tensor *x32 = mk(AG_F32, 3, (int64_t[3]){N, T, V}, vals);
    policy_arrays(x64, tg, old, ref, 62);
    for (int agg = 0; agg < 3; agg++)
        for (int b = 0; b < 2; b++) {
            ag_grpo_spec s = {.adv = adv,
                              .old_logp = old,
                              .ref_logp = ref,
                              .eps_low = 0.2,
                              .eps_high = 0.2,
                              .beta = b ? 0.1 : 0,
                              .agg = (ag_grpo_agg)agg,
                              .max_len = 10,
                              .n_seq = N};
            zero_grad(x32);
            zero_grad(x64);
            double l32 = run(x32, tg, &s, NULL, true), l64 = run(x64, tg, &s, NULL, true);
            assert_close(l32, l64, 0, 1e-5);
            for (size_t i = 0; i < (size_t)R * V; i++)
                assert_close(get(x32, x32->grad, i), get(x64, x64->grad, i), 1e-7, 1e-4);
        }
    rm(x32);
    rm(x64);
}

/* ---- determinism and ownership ------------------------------------------------------------ */

/* Above the OpenMP threshold (R·V = 65792): loss and gradient bit-identical for 1, 2 and 3
 * threads. */
static void test_grpo_thread_count_invariant(void **state) {
    (void)state;
    enum { N = 4, T = 64, V = 257, R = N * T };
    static double vals[R * V];
    int32_t tg[R];
    double old[R], ref[R];
    const double adv[N] = {1.0, -0.5, 0.25, -1.5};
    fill(vals, (size_t)R * V, -5, 5, 71);
    for (int r = 0; r < R; r++)
        tg[r] = r % 7 == 6 ? -1 : (r * 13) % V;
    ag_tensor *x = mk(AG_F32, 3, (int64_t[3]){N, T, V}, vals);
    policy_arrays(x, tg, old, ref, 72);
    ag_grpo_spec s = {.adv = adv,
                      .old_logp = old,
                      .ref_logp = ref,
                      .eps_low = 0.2,
                      .eps_high = 0.28,
                      .beta = 0.05,
                      .agg = AG_GRPO_SEQ_MEAN,
                      .n_seq = N};
    size_t nb = (size_t)R * V * sizeof(float);
    float *g1 = malloc(nb);
    float l1 = 0, l = 0;
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    loss_bytes(x, tg, &s, &l1);
    memcpy(g1, x->grad, nb);
    for (int th = 2; th <= 3; th++) {
        omp_set_num_threads(th);
        loss_bytes(x, tg, &s, &l);
        assert_memory_equal(&l, &l1, sizeof l);
        assert_memory_equal(x->grad, g1, nb);
    }
    omp_set_num_threads(saved);
    free(g1);
    rm(x);
}

/* The caller's targets, advantages and log-prob arrays may change between forward and backward:
 * the gradient is that of the values at the call. */
static void test_grpo_keeps_what_backward_needs(void **state) {
    (void)state;
    double old[6], ref[6], dl[6], g[18];
    hand_arrays(old, ref);
    int32_t tg[6];
    double adv[2];
    memcpy(tg, HAND_TG, sizeof tg);
    memcpy(adv, HAND_ADV, sizeof adv);
    ag_tensor *x = mk(AG_F64, 2, (int64_t[2]){6, 3}, HAND_X);
    ag_grpo_spec s = hand_spec(old, ref, AG_GRPO_SEQ_MEAN, 0.2, 0.1);
    s.adv = adv;
    ref_grpo(HAND_X, HAND_TG, 6, 3, &s, dl);
    ref_grad(HAND_X, HAND_TG, dl, 6, 3, g);
    ag_tape *t = new_tape();
    ag_tensor *loss = ag_grpo_loss(t, x, tg, &s, NULL);
    assert_non_null(loss);
    for (int r = 0; r < 6; r++)
        tg[r] = 1, old[r] = ref[r] = 0;
    adv[0] = adv[1] = 100;
    assert_int_equal(ag_backward(t, loss, NULL), 0);
    for (size_t i = 0; i < 18; i++)
        assert_close(((double *)x->grad)[i], g[i], 1e-15, 1e-13);
    ag_tape_free(t);
    rm(x);
}

int agt_run_grpo(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grpo_hand_case),
        cmocka_unit_test(test_grpo_gradcheck),
        cmocka_unit_test(test_grpo_clipped_tokens_zero_grad),
        cmocka_unit_test(test_grpo_old_null_matches_token_logprobs),
        cmocka_unit_test(test_grpo_ratio_one_closed_form),
        cmocka_unit_test(test_grpo_rejects_bad_input),
        cmocka_unit_test(test_grpo_f32_matches_f64),
        cmocka_unit_test(test_grpo_thread_count_invariant),
        cmocka_unit_test(test_grpo_keeps_what_backward_needs),
    };
    return cmocka_run_group_tests_name("autograd_grpo", tests, NULL, NULL);
}
