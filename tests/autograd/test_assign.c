/* test_assign.c — first-writer gradient assignment (ag_node.assign): the planner gives the bit to
 * exactly the first writer, in backward order, of an arena gradient whose op allows it, never to
 * an input that appears twice in one node; and gradients stay right when a tensor has several
 * consumers (double-precision gradient checks of such graphs). */
#include "agtest.h"

#include <stdlib.h>
#include <string.h>

/* h = x; a = h·w1ᵀ; b = h·w2ᵀ (h read twice); g1 = gelu(a); g2 = gelu(a) (a read twice);
 * out = g1 + g2 + b. */
static ag_tensor *shared_graph(ag_tape *t, ag_tensor **in, void *ctx) {
    (void)ctx;
    ag_tensor *a = ag_linear(t, in[0], in[1]), *b = ag_linear(t, in[0], in[2]);
    return ag_add(t, ag_add(t, ag_gelu(t, a), ag_gelu(t, a)), b);
}

static void test_planner_marks_first_writers(void **state) {
    (void)state;
    int64_t sx[2] = {3, 4}, sw[2] = {4, 4};
    ag_tensor *in[3] = {agt_rand(2, sx, -1, 1, 1, true), agt_rand(2, sw, -1, 1, 2, true),
                        agt_rand(2, sw, -1, 1, 3, true)};
    ag_tape *t = ag_tape_create(1 << 20, 0, 64);
    ag_tensor *y = shared_graph(t, in, NULL);
    assert_non_null(y);
    /* A scalar loss: out = Σ y via a matmul with ones would add ops; seed y's grad instead. */
    assert_int_equal(ag_backward_prepare(t, y), 0);
    /* Nodes in order: linear a (0), linear b (1), gelu g1 (2), gelu g2 (3), add (4), add (5). */
    assert_int_equal(ag_tape_size(t), 6);
    const ag_node *la = ag_tape_node(t, 0), *lb = ag_tape_node(t, 1);
    const ag_node *g1 = ag_tape_node(t, 2), *g2 = ag_tape_node(t, 3);
    assert_int_equal(lb->assign, 1u); /* runs first among x's readers: assigns dx */
    assert_int_equal(la->assign, 0u); /* then accumulates */
    assert_int_equal(g2->assign, 1u); /* first writer of a's gradient */
    assert_int_equal(g1->assign, 0u);
    /* add assigns both inputs when it writes them first: (g1 + g2) and b from the last add,
     * g1 and g2 from the first. */
    assert_int_equal(ag_tape_node(t, 5)->assign, 3u);
    assert_int_equal(ag_tape_node(t, 4)->assign, 3u);
    ag_tape_free(t);
    /* add(x, x) is never assigned; a broadcast b (bias) is: its sums start from 0. */
    t = ag_tape_create(1 << 20, 0, 64);
    ag_tensor *xx = ag_add(t, in[0], in[0]);
    assert_int_equal(ag_backward_prepare(t, xx), 0);
    assert_int_equal(ag_tape_node(t, 0)->assign, 0u);
    ag_tape_free(t);
    /* linear(w, w): the same tensor twice in one node is never assigned. */
    t = ag_tape_create(1 << 20, 0, 64);
    ag_tensor *z = ag_linear(t, in[1], in[1]);
    assert_int_equal(ag_backward_prepare(t, z), 0);
    assert_int_equal(ag_tape_node(t, 0)->assign, 0u);
    ag_tape_free(t);
    for (int i = 0; i < 3; i++)
        agt_free(in[i]);
}

static void test_shared_consumers_gradcheck(void **state) {
    (void)state;
    int64_t sx[3] = {2, 3, 5}, sw1[2] = {6, 5}, sw2[2] = {6, 5};
    ag_tensor *in[3] = {agt_rand(3, sx, -1, 1, 11, true), agt_rand(2, sw1, -1, 1, 12, true),
                        agt_rand(2, sw2, -1, 1, 13, true)};
    agt_gradcheck("linear/gelu with shared inputs", shared_graph, NULL, in, 3);
    in[1]->requires_grad = false; /* x's writers only: the first one assigns */
    agt_gradcheck("shared inputs, w1 frozen", shared_graph, NULL, in, 3);
    for (int i = 0; i < 3; i++)
        agt_free(in[i]);
}

/* A residual stream: h1 = x + linear(x), h2 = h1 + 2·bias (broadcast onto an arena bias: add
 * assigns its row sums), logits = h2 + gelu(h1) (h1 read by an add and a GELU), and
 * cross-entropy assigning the logits' gradient, ignored rows included. */
static ag_tensor *residual_graph(ag_tape *t, ag_tensor **in, void *ctx) {
    const int32_t *tg = ctx;
    ag_tensor *h1 = ag_add(t, in[0], ag_linear(t, in[0], in[1]));
    ag_tensor *h2 = ag_add(t, h1, ag_scale(t, in[2], 2.0));
    return ag_cross_entropy(t, ag_add(t, h2, ag_gelu(t, h1)), tg);
}

static void test_residual_adds_gradcheck(void **state) {
    (void)state;
    int64_t sx[2] = {4, 5}, sw[2] = {5, 5}, sb[1] = {5};
    ag_tensor *in[3] = {agt_rand(2, sx, -1, 1, 21, true), agt_rand(2, sw, -1, 1, 22, true),
                        agt_rand(1, sb, -1, 1, 23, true)};
    int32_t tg[4] = {1, -1, 4, 0}, none[4] = {-1, -1, -1, -1};
    agt_gradcheck("residual adds + cross-entropy", residual_graph, tg, in, 3);
    agt_gradcheck("residual adds, no valid target", residual_graph, none, in, 3);
    for (int i = 0; i < 3; i++)
        agt_free(in[i]);
}

int agt_run_assign(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_planner_marks_first_writers),
        cmocka_unit_test(test_shared_consumers_gradcheck),
        cmocka_unit_test(test_residual_adds_gradcheck),
    };
    return cmocka_run_group_tests_name("autograd_assign", tests, NULL, NULL);
}
