/* test_attention.c — rope (plain and packed) and causal attention (three tensors or one packed
 * [B,T,3C] projection): hand-computed forwards, norm-preserving relative rotations, causality,
 * agreement with a naive attention, packed = unpacked bit for bit, bad shapes, and
 * double-precision gradient checks with respect to every input. */
#include "agtest.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static ag_tape *new_tape(void) { return ag_tape_create(1 << 20, 0, 64); }

/* ---- rope -------------------------------------------------------------------------------------
 */

typedef struct {
    int n_head;
    int64_t pos0;
    double base;
} rope_args;

static ag_tensor *build_rope(ag_tape *t, ag_tensor **in, void *ctx) {
    const rope_args *a = ctx;
    return ag_rope(t, in[0], a->n_head, a->pos0, a->base);
}

static void test_rope_hand_case(void **state) {
    (void)state;
    /* HS = 4: pair 0 turns by p rad, pair 1 by p·10000^(-1/2) = p/100. t = 0 is the identity. */
    int64_t sx[3] = {1, 2, 4};
    ag_tensor *x = agt_from_vals(3, sx, (double[]){1, 2, 3, 4, 1, 0, 0, 1});
    const double want[8] = {1, 2, 3, 4, cos(1.0), sin(1.0), -sin(0.01), cos(0.01)};
    for (int f32 = 0; f32 < 2; f32++) {
        ag_tensor *xs = f32 ? agt_to_f32(x) : x;
        ag_tape *t = new_tape();
        ag_tensor *y = ag_rope(t, xs, 1, 0, 10000.0);
        assert_non_null(y);
        for (int i = 0; i < 8; i++)
            assert_close(agt_at(y, (size_t)i), want[i], f32 ? 1e-7 : 1e-15, 0);
        ag_tape_free(t);
        if (f32)
            agt_free_f32(xs);
    }
    agt_free(x);
}

static void test_rope_preserves_pair_norms(void **state) {
    (void)state;
    int64_t sx[3] = {2, 5, 12};
    ag_tensor *x = agt_rand(3, sx, -2, 2, 41, false);
    ag_tape *t = new_tape();
    ag_tensor *y = ag_rope(t, x, 2, 3, 10000.0);
    assert_non_null(y);
    for (size_t p = 0; p < x->numel / 2; p++) {
        double nx = hypot(agt_at(x, 2 * p), agt_at(x, 2 * p + 1));
        double ny = hypot(agt_at(y, 2 * p), agt_at(y, 2 * p + 1));
        assert_close(ny, nx, 1e-14, 1e-14);
    }
    ag_tape_free(t);
    agt_free(x);
}

/* Rotating rows s.. of x from position pos0+s equals rows s.. of x rotated from pos0. */
static void test_rope_pos0_shifts_positions(void **state) {
    (void)state;
    const int64_t T = 9, C = 12, s = 4, pos0 = 7;
    int64_t sx[3] = {1, T, C}, stail[3] = {1, T - s, C};
    ag_tensor *x = agt_rand(3, sx, -1, 1, 51, false);
    ag_tensor *tail = agt_from_vals(3, stail, (const double *)x->data + s * C);
    ag_tape *t = new_tape();
    ag_tensor *y = ag_rope(t, x, 3, pos0, 500.0), *yt = ag_rope(t, tail, 3, pos0 + s, 500.0);
    assert_non_null(y);
    assert_non_null(yt);
    for (size_t i = 0; i < yt->numel; i++)
        assert_close(agt_at(yt, i), agt_at(y, (size_t)(s * C) + i), 1e-13, 0);
    ag_tape_free(t);
    agt_free(x);
    agt_free(tail);
}

/* ⟨rope(q at m), rope(k at n)⟩ per head depends on m − n only. */
static void test_rope_dot_depends_on_offset_only(void **state) {
    (void)state;
    const int64_t C = 16;
    const int NH = 2;
    int64_t sv[3] = {1, 1, C};
    ag_tensor *q = agt_rand(3, sv, -1, 1, 61, false), *k = agt_rand(3, sv, -1, 1, 62, false);
    const int64_t pairs[4][2] = {{5, 2}, {13, 10}, {1003, 1000}, {3, 0}};
    double dots[5][2];
    ag_tape *t = new_tape();
    for (int p = 0; p < 5; p++) {
        /* The last pair has offset 4 instead of 3: its dots must differ. */
        int64_t m = p < 4 ? pairs[p][0] : 4, n = p < 4 ? pairs[p][1] : 0;
        ag_tensor *rq = ag_rope(t, q, NH, m, 10000.0), *rk = ag_rope(t, k, NH, n, 10000.0);
        assert_non_null(rq);
        assert_non_null(rk);
        for (int h = 0; h < NH; h++) {
            dots[p][h] = 0;
            for (int64_t c = h * C / NH; c < (h + 1) * C / NH; c++)
                dots[p][h] += agt_at(rq, (size_t)c) * agt_at(rk, (size_t)c);
        }
    }
    for (int p = 1; p < 4; p++)
        for (int h = 0; h < NH; h++)
            assert_close(dots[p][h], dots[0][h], 1e-12, 1e-12);
    assert_true(fabs(dots[4][0] - dots[0][0]) > 1e-3);
    ag_tape_free(t);
    agt_free(q);
    agt_free(k);
}

static void test_rope_gradcheck_and_bad_shapes(void **state) {
    (void)state;
    int64_t sx[3] = {3, 5, 12};
    ag_tensor *x = agt_rand(3, sx, -2, 2, 71, true);
    ag_tensor *in[1] = {x};
    rope_args a = {2, 5, 10000.0}; /* HS = 6 */
    agt_gradcheck("rope", build_rope, &a, in, 1);
    rope_args b = {6, 1000, 10.0}; /* HS = 2, large angles */
    agt_gradcheck("rope hs2", build_rope, &b, in, 1);
    ag_tape *t = new_tape();
    assert_null(ag_rope(t, x, 4, 0, 10000.0)); /* HS = 3 is odd */
    assert_null(ag_rope(t, x, 5, 0, 10000.0)); /* 5 does not divide 12 */
    assert_null(ag_rope(t, x, 0, 0, 10000.0));
    assert_null(ag_rope(t, NULL, 2, 0, 10000.0));
    ag_tape_free(t);
    agt_free(x);
}

/* ---- attention --------------------------------------------------------------------------------
 */

/* The textbook definition, one output element at a time (double). */
static void naive_attention(const double *q, const double *k, const double *v, double *out,
                            int64_t B, int64_t T, int64_t C, int64_t NH) {
    int64_t HS = C / NH;
    double *p = malloc((size_t)T * sizeof *p);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < NH; h++)
            for (int64_t i = 0; i < T; i++) {
                const double *qi = q + (b * T + i) * C + h * HS;
                double mx = -INFINITY, sum = 0;
                for (int64_t j = 0; j <= i; j++) {
                    const double *kj = k + (b * T + j) * C + h * HS;
                    double s = 0;
                    for (int64_t d = 0; d < HS; d++)
                        s += qi[d] * kj[d];
                    p[j] = s / sqrt((double)HS);
                    mx = fmax(mx, p[j]);
                }
                for (int64_t j = 0; j <= i; j++)
                    sum += p[j] = exp(p[j] - mx);
                for (int64_t d = 0; d < HS; d++) {
                    double o = 0;
                    for (int64_t j = 0; j <= i; j++)
                        o += p[j] / sum * v[(b * T + j) * C + h * HS + d];
                    out[(b * T + i) * C + h * HS + d] = o;
                }
            }
    free(p);
}

static ag_tensor *build_attention(ag_tape *t, ag_tensor **in, void *ctx) {
    return ag_attention(t, in[0], in[1], in[2], *(const int *)ctx);
}

/* T = 150 spans three row blocks with a ragged last one. */
static void test_attention_matches_naive(void **state) {
    (void)state;
    const int64_t B = 2, T = 150, C = 24;
    const int NH = 3;
    int64_t sh[3] = {B, T, C};
    ag_tensor *q = agt_rand(3, sh, -2, 2, 81, false), *k = agt_rand(3, sh, -2, 2, 82, false);
    ag_tensor *v = agt_rand(3, sh, -1, 1, 83, false), *ref = agt_rand(3, sh, 0, 0, 0, false);
    naive_attention(q->data, k->data, v->data, ref->data, B, T, C, NH);
    ag_tensor *qf = agt_to_f32(q), *kf = agt_to_f32(k), *vf = agt_to_f32(v);
    ag_tape *t = ag_tape_create(1 << 22, 0, 16);
    ag_tensor *y = ag_attention(t, q, k, v, NH), *yf = ag_attention(t, qf, kf, vf, NH);
    assert_non_null(y);
    assert_non_null(yf);
    agt_assert_all_close(y, ref, 1e-13, 1e-12);
    agt_assert_all_close(yf, ref, 2e-6, 1e-5);
    ag_tape_free(t);
    agt_free(q);
    agt_free(k);
    agt_free(v);
    agt_free(ref);
    agt_free_f32(qf);
    agt_free_f32(kf);
    agt_free_f32(vf);
}

/* Changing k and v at position t0 leaves every output before t0 bit-identical (and changes the
 * output at t0, so the check has teeth). Both the recorded path (P kept) and the inference path. */
static void test_attention_is_causal(void **state) {
    (void)state;
    const int64_t B = 2, T = 70, C = 8, t0 = 66;
    const int NH = 2;
    int64_t sh[3] = {B, T, C};
    for (int f32 = 0; f32 < 2; f32++)
        for (int rec = 0; rec < 2; rec++) {
            ag_tensor *qd = agt_rand(3, sh, -2, 2, 91, rec), *kd = agt_rand(3, sh, -2, 2, 92, rec);
            ag_tensor *vd = agt_rand(3, sh, -1, 1, 93, rec);
            ag_tensor *q = f32 ? agt_to_f32(qd) : qd, *k = f32 ? agt_to_f32(kd) : kd;
            ag_tensor *v = f32 ? agt_to_f32(vd) : vd;
            ag_tape *t = ag_tape_create(1 << 20, 0, 16);
            ag_tensor *y0 = ag_attention(t, q, k, v, NH);
            assert_non_null(y0);
            assert_int_equal(ag_tape_size(t), (size_t)rec);
            for (int64_t b = 0; b < B; b++)
                for (int64_t c = 0; c < C; c++) {
                    size_t i = (size_t)((b * T + t0) * C + c);
                    if (f32) {
                        ((float *)k->data)[i] += 3.0f;
                        ((float *)v->data)[i] -= 5.0f;
                    } else {
                        ((double *)k->data)[i] += 3.0;
                        ((double *)v->data)[i] -= 5.0;
                    }
                }
            ag_tensor *y1 = ag_attention(t, q, k, v, NH);
            assert_non_null(y1);
            size_t es = ag_dtype_size(y0->dtype);
            for (int64_t b = 0; b < B; b++) {
                const char *r0 = (const char *)y0->data + (size_t)(b * T * C) * es;
                const char *r1 = (const char *)y1->data + (size_t)(b * T * C) * es;
                assert_memory_equal(r0, r1, (size_t)(t0 * C) * es);
                size_t i = (size_t)((b * T + t0) * C);
                assert_true(fabs(agt_at(y0, i) - agt_at(y1, i)) > 1e-3);
            }
            ag_tape_free(t);
            if (f32) {
                agt_free_f32(q);
                agt_free_f32(k);
                agt_free_f32(v);
            }
            agt_free(qd);
            agt_free(kd);
            agt_free(vd);
        }
}

/* With one position the softmax is 1: out = v exactly, and dq = dk = 0, dv = dout. */
static void test_attention_single_position(void **state) {
    (void)state;
    int64_t sh[3] = {3, 1, 6};
    ag_tensor *q = agt_rand(3, sh, -2, 2, 101, true), *k = agt_rand(3, sh, -2, 2, 102, true);
    ag_tensor *v = agt_rand(3, sh, -1, 1, 103, true);
    ag_tensor *qf = agt_to_f32(q), *kf = agt_to_f32(k), *vf = agt_to_f32(v);
    ag_tape *t = new_tape();
    ag_tensor *yf = ag_attention(t, qf, kf, vf, 2);
    assert_non_null(yf);
    assert_memory_equal(yf->data, vf->data, 18 * sizeof(float));
    float seed[18];
    for (int i = 0; i < 18; i++)
        seed[i] = (float)(i - 7) * 0.25f;
    assert_int_equal(ag_backward(t, yf, seed), 0);
    for (size_t i = 0; i < 18; i++) {
        assert_close(agt_grad_at(qf, i), 0, 0, 0);
        assert_close(agt_grad_at(kf, i), 0, 0, 0);
        assert_close(agt_grad_at(vf, i), seed[i], 0, 0);
    }
    ag_tape_free(t);
    int NH = 2;
    ag_tensor *in[3] = {q, k, v};
    agt_gradcheck("attention T=1", build_attention, &NH, in, 3);
    agt_free(q);
    agt_free(k);
    agt_free(v);
    agt_free_f32(qf);
    agt_free_f32(kf);
    agt_free_f32(vf);
}

static void test_attention_gradcheck(void **state) {
    (void)state;
    int64_t sh[3] = {2, 5, 12};
    ag_tensor *q = agt_rand(3, sh, -2, 2, 111, true), *k = agt_rand(3, sh, -2, 2, 112, true);
    ag_tensor *v = agt_rand(3, sh, -1, 1, 113, true);
    ag_tensor *in[3] = {q, k, v};
    int NH = 3;
    agt_gradcheck("attention q,k,v", build_attention, &NH, in, 3);
    q->requires_grad = k->requires_grad = false;
    agt_gradcheck("attention v", build_attention, &NH, in, 3);
    q->requires_grad = true;
    v->requires_grad = false;
    agt_gradcheck("attention q", build_attention, &NH, in, 3);
    agt_free(q);
    agt_free(k);
    agt_free(v);
    /* T = 67 crosses a row-block boundary: dk, dv gather from two blocks. */
    int64_t sl[3] = {1, 67, 4};
    q = agt_rand(3, sl, -2, 2, 114, true);
    k = agt_rand(3, sl, -2, 2, 115, true);
    v = agt_rand(3, sl, -1, 1, 116, true);
    ag_tensor *inl[3] = {q, k, v};
    NH = 2;
    agt_gradcheck("attention T=67", build_attention, &NH, inl, 3);
    agt_free(q);
    agt_free(k);
    agt_free(v);
}

static ag_tensor *build_rope_attention(ag_tape *t, ag_tensor **in, void *ctx) {
    (void)ctx;
    ag_tensor *q = ag_rope(t, in[0], 2, 3, 100.0), *k = ag_rope(t, in[1], 2, 3, 100.0);
    return ag_attention(t, ag_scale(t, q, 0.5), k, in[2], 2);
}

/* The composition a model uses: rotated queries and keys into attention. */
static void test_rope_attention_gradcheck(void **state) {
    (void)state;
    int64_t sh[3] = {2, 6, 12};
    ag_tensor *q = agt_rand(3, sh, -2, 2, 121, true), *k = agt_rand(3, sh, -2, 2, 122, true);
    ag_tensor *v = agt_rand(3, sh, -1, 1, 123, true);
    ag_tensor *in[3] = {q, k, v};
    agt_gradcheck("rope+attention", build_rope_attention, NULL, in, 3);
    agt_free(q);
    agt_free(k);
    agt_free(v);
}

/* ---- packed attention (one [B,T,3C] projection) ------------------------------------------- */

static ag_tensor *build_attention_packed(ag_tape *t, ag_tensor **in, void *ctx) {
    return ag_attention_packed(t, in[0], *(const int *)ctx);
}

/* qkv also feeds a linear layer whose backward runs first and assigns qkv's gradient, so
 * attention accumulates into it (the unassigned path of the packed op). */
static ag_tensor *build_attention_packed_shared(ag_tape *t, ag_tensor **in, void *ctx) {
    return ag_add(t, ag_attention_packed(t, in[0], *(const int *)ctx), ag_linear(t, in[0], in[1]));
}

/* q is also added to the output: add's backward writes q's gradient first (zero-filled), then
 * attention accumulates; k and v are assigned by attention. */
static ag_tensor *build_attention_shared_q(ag_tape *t, ag_tensor **in, void *ctx) {
    return ag_add(t, ag_attention(t, in[0], in[1], in[2], *(const int *)ctx), in[0]);
}

/* [q | k | v] along the last dim of one (B,T,3C) tensor. */
static ag_tensor *pack3(ag_tensor *const *x, bool requires_grad) {
    int64_t B = x[0]->shape[0], T = x[0]->shape[1], C = x[0]->shape[2], sh[3] = {B, T, 3 * C};
    ag_tensor *p = agt_rand(3, sh, 0, 0, 0, requires_grad);
    for (int64_t r = 0; r < B * T; r++)
        for (int j = 0; j < 3; j++)
            memcpy((double *)p->data + r * 3 * C + j * C, (const double *)x[j]->data + r * C,
                   (size_t)C * sizeof(double));
    return p;
}

/* Float: the packed op gives the output and the q, k, v gradients of ag_attention on the three
 * slices bit for bit (the same GEMMs, read with another row stride), whether it assigns its
 * gradient (fresh arena buffer) or accumulates into a caller's. T = 70 spans three row blocks. */
static void test_attention_packed_matches_unpacked(void **state) {
    (void)state;
    const int64_t B = 2, T = 70, C = 12;
    const int NH = 3;
    int64_t sh[3] = {B, T, C};
    ag_tensor *xd[3] = {agt_rand(3, sh, -2, 2, 131, true), agt_rand(3, sh, -2, 2, 132, true),
                        agt_rand(3, sh, -1, 1, 133, true)};
    ag_tensor *pd = pack3(xd, true);
    ag_tensor *x[3] = {agt_to_f32(xd[0]), agt_to_f32(xd[1]), agt_to_f32(xd[2])},
              *p = agt_to_f32(pd);
    float *seed = malloc((size_t)(B * T * C) * sizeof *seed);
    for (int64_t i = 0; i < B * T * C; i++)
        seed[i] = (float)((i * 7919) % 23 - 11) * 0.125f;
    void *own[4] = {x[0]->grad, x[1]->grad, x[2]->grad, p->grad}; /* zeroed caller grads */
    for (int assigned = 0; assigned < 2; assigned++) {
        ag_tape *t = ag_tape_create(1 << 22, 0, 16), *tp = ag_tape_create(1 << 22, 0, 16);
        for (int j = 0; j < 3; j++) /* arena gradients, which attention assigns, or the caller's */
            x[j]->grad = assigned ? NULL : own[j];
        p->grad = assigned ? NULL : own[3];
        ag_tensor *y = ag_attention(t, x[0], x[1], x[2], NH), *yp = ag_attention_packed(tp, p, NH);
        assert_non_null(y);
        assert_non_null(yp);
        assert_memory_equal(y->data, yp->data, y->numel * sizeof(float));
        assert_int_equal(ag_backward(t, y, seed), 0);
        assert_int_equal(ag_backward(tp, yp, seed), 0);
        assert_int_equal(ag_tape_node(t, 0)->assign, assigned ? 7u : 0u);
        assert_int_equal(ag_tape_node(tp, 0)->assign, assigned ? 1u : 0u);
        for (int64_t r = 0; r < B * T; r++)
            for (int j = 0; j < 3; j++)
                assert_memory_equal((const float *)x[j]->grad + r * C,
                                    (const float *)p->grad + r * 3 * C + j * C,
                                    (size_t)C * sizeof(float));
        ag_tape_free(t);
        ag_tape_free(tp);
    }
    for (int j = 0; j < 3; j++) {
        x[j]->grad = own[j];
        agt_free_f32(x[j]);
        agt_free(xd[j]);
    }
    p->grad = own[3];
    agt_free_f32(p);
    agt_free(pd);
    free(seed);
}

static void test_attention_packed_gradcheck(void **state) {
    (void)state;
    int NH = 3;
    int64_t sh[3] = {2, 5, 36}, sw[2] = {12, 36}, sl[3] = {1, 67, 12};
    ag_tensor *in[2] = {agt_rand(3, sh, -2, 2, 141, true), agt_rand(2, sw, -1, 1, 142, true)};
    agt_gradcheck("attention packed", build_attention_packed, &NH, in, 1);
    agt_gradcheck("attention packed, accumulated", build_attention_packed_shared, &NH, in, 2);
    agt_free(in[0]);
    agt_free(in[1]);
    /* T = 67 crosses a row-block boundary: dk, dv gather from two blocks into cleared slices. */
    ag_tensor *l = agt_rand(3, sl, -2, 2, 143, true);
    NH = 2;
    agt_gradcheck("attention packed T=67", build_attention_packed, &NH, &l, 1);
    agt_free(l);
    int64_t s3[3] = {2, 67, 4};
    ag_tensor *q[3] = {agt_rand(3, s3, -2, 2, 144, true), agt_rand(3, s3, -2, 2, 145, true),
                       agt_rand(3, s3, -1, 1, 146, true)};
    agt_gradcheck("attention, q shared", build_attention_shared_q, &NH, q, 3);
    for (int j = 0; j < 3; j++)
        agt_free(q[j]);
}

/* Packed rope: the q and k thirds rotated exactly as ag_rope rotates them apart (float, bit for
 * bit), v copied; and gradient checks of packed rope into packed attention, with rope assigning
 * its gradient (first writer) or accumulating (qkv also read by a linear layer). */
static ag_tensor *build_rope_packed_attention(ag_tape *t, ag_tensor **in, void *ctx) {
    (void)ctx;
    return ag_attention_packed(t, ag_rope_packed(t, in[0], 2, 3, 100.0), 2);
}

static ag_tensor *build_rope_packed_shared(ag_tape *t, ag_tensor **in, void *ctx) {
    (void)ctx;
    ag_tensor *r = ag_rope_packed(t, in[0], 2, 3, 100.0);
    return ag_add(t, ag_attention_packed(t, r, 2), ag_linear(t, r, in[1]));
}

static void test_rope_packed(void **state) {
    (void)state;
    const int64_t B = 2, T = 5, C = 12;
    int64_t sh[3] = {B, T, C};
    ag_tensor *xd[3] = {agt_rand(3, sh, -2, 2, 151, false), agt_rand(3, sh, -2, 2, 152, false),
                        agt_rand(3, sh, -1, 1, 153, false)};
    ag_tensor *pd = pack3(xd, false);
    ag_tensor *x[3] = {agt_to_f32(xd[0]), agt_to_f32(xd[1]), agt_to_f32(xd[2])},
              *p = agt_to_f32(pd);
    ag_tape *t = new_tape();
    ag_tensor *rq = ag_rope(t, x[0], 3, 7, 10000.0), *rk = ag_rope(t, x[1], 3, 7, 10000.0);
    ag_tensor *rp = ag_rope_packed(t, p, 3, 7, 10000.0);
    assert_non_null(rp);
    const ag_tensor *want[3] = {rq, rk, x[2]};
    for (int64_t r = 0; r < B * T; r++)
        for (int j = 0; j < 3; j++)
            assert_memory_equal((const float *)want[j]->data + r * C,
                                (const float *)rp->data + r * 3 * C + j * C,
                                (size_t)C * sizeof(float));
    assert_null(ag_rope_packed(t, x[0], 3, 7, 10000.0)); /* 12 = 3C with C = 4: HS 4/3 */
    ag_tape_free(t);
    for (int j = 0; j < 3; j++) {
        agt_free_f32(x[j]);
        agt_free(xd[j]);
    }
    agt_free_f32(p);
    agt_free(pd);
    int64_t sp[3] = {2, 6, 36}, sw[2] = {12, 36};
    ag_tensor *in[2] = {agt_rand(3, sp, -2, 2, 154, true), agt_rand(2, sw, -1, 1, 155, true)};
    agt_gradcheck("rope packed + attention packed", build_rope_packed_attention, NULL, in, 1);
    agt_gradcheck("rope packed, accumulated", build_rope_packed_shared, NULL, in, 2);
    agt_free(in[0]);
    agt_free(in[1]);
}

static void test_attention_packed_rejects_bad_shapes(void **state) {
    (void)state;
    int64_t s7[3] = {2, 4, 7}, s2[2] = {4, 6}, s18[3] = {1, 3, 18};
    ag_tensor *a = agt_rand(3, s7, -1, 1, 1, false), *b = agt_rand(2, s2, -1, 1, 2, false);
    ag_tensor *c = agt_rand(3, s18, -1, 1, 3, false);
    ag_tape *t = new_tape();
    assert_null(ag_attention_packed(t, a, 1)); /* 7 is not 3C */
    assert_null(ag_attention_packed(t, b, 1)); /* not [B,T,3C] */
    assert_null(ag_attention_packed(t, NULL, 1));
    assert_null(ag_attention_packed(t, c, 4)); /* 4 does not divide C = 6 */
    assert_null(ag_attention_packed(t, c, 0));
    ag_tensor *y = ag_attention_packed(t, c, 3);
    assert_non_null(y);
    assert_int_equal(y->shape[2], 6);
    ag_tape_free(t);
    agt_free(a);
    agt_free(b);
    agt_free(c);
}

static void test_attention_rejects_bad_shapes(void **state) {
    (void)state;
    int64_t sa[3] = {2, 4, 6}, sb[3] = {2, 5, 6};
    ag_tensor *a = agt_rand(3, sa, -1, 1, 1, false), *b = agt_rand(3, sb, -1, 1, 2, false);
    ag_tensor *af = agt_to_f32(a);
    ag_tape *t = new_tape();
    assert_null(ag_attention(t, a, a, b, 2));
    assert_null(ag_attention(t, a, af, a, 2));
    assert_null(ag_attention(t, a, a, a, 4)); /* 4 does not divide 6 */
    assert_null(ag_attention(t, a, a, a, 0));
    assert_null(ag_attention(t, a, NULL, a, 2));
    assert_non_null(ag_attention(t, a, a, a, 3));
    ag_tape_free(t);
    agt_free(a);
    agt_free(b);
    agt_free_f32(af);
}

int agt_run_attention(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rope_hand_case),
        cmocka_unit_test(test_rope_preserves_pair_norms),
        cmocka_unit_test(test_rope_pos0_shifts_positions),
        cmocka_unit_test(test_rope_dot_depends_on_offset_only),
        cmocka_unit_test(test_rope_gradcheck_and_bad_shapes),
        cmocka_unit_test(test_attention_matches_naive),
        cmocka_unit_test(test_attention_is_causal),
        cmocka_unit_test(test_attention_single_position),
        cmocka_unit_test(test_attention_gradcheck),
        cmocka_unit_test(test_rope_attention_gradcheck),
        cmocka_unit_test(test_attention_rejects_bad_shapes),
        cmocka_unit_test(test_attention_packed_matches_unpacked),
        cmocka_unit_test(test_attention_packed_gradcheck),
        cmocka_unit_test(test_attention_packed_rejects_bad_shapes),
        cmocka_unit_test(test_rope_packed),
    };
    return cmocka_run_group_tests_name("autograd_attention", tests, NULL, NULL);
}
