/* tape.c — recording ops in forward order and replaying their backward functions in reverse. */
#include "autograd/ag.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ag_tape {
    ag_arena *arena;
    ag_node *nodes;
    size_t n, cap;
    bool recording;
    char err[160];
    void *shared; /* ag_tape_shared: one scratch buffer for every op, outside the arena */
    size_t shared_cap;
};

ag_tape *ag_tape_create(size_t arena_initial, size_t arena_limit, size_t max_nodes) {
    ag_tape *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->arena = ag_arena_create(arena_initial, arena_limit);
    t->nodes = calloc(max_nodes ? max_nodes : 1, sizeof *t->nodes);
    if (!t->arena || !t->nodes) {
        ag_tape_free(t);
        return NULL;
    }
    t->cap = max_nodes;
    t->recording = true;
    return t;
}

void ag_tape_free(ag_tape *t) {
    if (!t)
        return;
    ag_arena_free(t->arena);
    free(t->nodes);
    free(t->shared);
    free(t);
}

void *ag_tape_shared(ag_tape *t, size_t bytes) {
    if (bytes <= t->shared_cap)
        return t->shared;
    size_t cap = (bytes + 63) / 64 * 64; /* aligned_alloc wants a multiple of the alignment */
    void *p = aligned_alloc(64, cap);
    if (!p) {
        snprintf(t->err, sizeof t->err, "out of memory for %zu bytes of shared op scratch", cap);
        return NULL;
    }
    free(t->shared);
    t->shared = p;
    t->shared_cap = cap;
    return p;
}

void ag_tape_reset(ag_tape *t) {
    t->n = 0;
    t->err[0] = '\0';
    ag_arena_reset(t->arena);
}

void ag_tape_set_recording(ag_tape *t, bool on) { t->recording = on; }
bool ag_tape_recording(const ag_tape *t) { return t->recording; }
ag_arena *ag_tape_arena(ag_tape *t) { return t->arena; }
size_t ag_tape_size(const ag_tape *t) { return t->n; }
const ag_node *ag_tape_node(const ag_tape *t, size_t i) { return i < t->n ? &t->nodes[i] : NULL; }

const char *ag_tape_error(const ag_tape *t) {
    return t->err[0] ? t->err : ag_arena_error(t->arena);
}

void *ag_tape_alloc(ag_tape *t, size_t bytes) { return ag_arena_alloc(t->arena, bytes); }

ag_tensor *ag_op_output(ag_tape *t, ag_dtype d, int ndim, const int64_t *shape, ag_tensor **in,
                        int n_in) {
    for (int i = 0; i < n_in; i++)
        if (!in[i])
            return NULL;
    ag_tensor *out = ag_tensor_new(t, d, ndim, shape);
    if (!out)
        return NULL;
    if (t->recording)
        for (int i = 0; i < n_in; i++)
            out->requires_grad |= in[i]->requires_grad;
    return out;
}

ag_node *ag_record(ag_tape *t, ag_op op, ag_tensor *out, ag_tensor **in, int n_in) {
    if (!t->recording || !out->requires_grad)
        return NULL;
    if (t->n == t->cap) {
        if (!t->err[0])
            snprintf(t->err, sizeof t->err, "tape full: more than %zu ops in one step", t->cap);
        return NULL;
    }
    ag_node *nd = &t->nodes[t->n++];
    memset(nd, 0, sizeof *nd);
    nd->op = op;
    nd->out = out;
    nd->n_in = n_in;
    for (int i = 0; i < n_in; i++)
        nd->in[i] = in[i];
    return nd;
}

/* Every tensor the reverse pass touches: the outputs and inputs of recorded nodes, and `out`. */
static void visit_tensors(ag_tape *t, ag_tensor *out, void (*fn)(ag_tensor *x, void *ctx),
                          void *ctx) {
    for (size_t i = 0; i < t->n; i++) {
        fn(t->nodes[i].out, ctx);
        for (int j = 0; j < t->nodes[i].n_in; j++)
            fn(t->nodes[i].in[j], ctx);
    }
    fn(out, ctx);
}

typedef struct grad_plan {
    /* Sentinels in x->grad while planning: counted, not yet claimed by a writer (pending); its
     * first writer assigns, no zero-fill needed (assigned); needs zero-filling (zeroed). */
    char pending, assigned, zeroed;
    size_t total;         /* bytes counted */
    unsigned char *block; /* NULL while counting */
    unsigned char *run;   /* start of the current run of slices that need zero-filling */
    size_t run_len;
} grad_plan;

static size_t grad_bytes(const ag_tensor *x) {
    return (x->numel * ag_dtype_size(x->dtype) + 63) & ~(size_t)63;
}

static bool planned(const grad_plan *p, const ag_tensor *x) {
    return x->grad == &p->pending || x->grad == &p->assigned || x->grad == &p->zeroed;
}

/* Counting pass: mark each tensor needing a buffer (once) and add up the sizes. */
static void plan_count(ag_tensor *x, void *ctx) {
    grad_plan *p = ctx;
    if (x->requires_grad && !x->grad) {
        x->grad = &p->pending;
        p->total += grad_bytes(x);
    }
}
static void zero_fill(void *p, size_t bytes);

/* Assigning pass: consecutive slices of the block, in the same order; runs of adjacent slices
 * that need zeros are cleared together. */
static void plan_assign(ag_tensor *x, void *ctx) {
    grad_plan *p = ctx;
    if (!planned(p, x))
        return;
    bool zero = x->grad != &p->assigned;
    x->grad = p->block;
    size_t bytes = grad_bytes(x);
    if (zero && p->run + p->run_len == p->block) {
        p->run_len += bytes;
    } else if (zero) {
        if (p->run_len)
            zero_fill(p->run, p->run_len);
        p->run = p->block;
        p->run_len = bytes;
    }
    p->block += bytes;
}

/* Undo the marks when the block cannot be had. */
static void plan_unmark(ag_tensor *x, void *ctx) {
    if (planned(ctx, x))
        x->grad = NULL;
}

/* The first writer of each planned gradient in backward order (the tape reversed) may assign it
 * instead of accumulating into zeros, when its op allows that for the input and the tensor is not
 * also another input or the output of the same node. Every other planned gradient is zeroed. */
static void plan_writers(ag_tape *t, ag_tensor *out, grad_plan *p) {
    if (out->grad == &p->pending)
        out->grad = &p->assigned; /* the seed writes all of it */
    for (size_t i = t->n; i-- > 0;) {
        ag_node *nd = &t->nodes[i];
        unsigned ok = ag_op_assign_inputs(nd->op);
        nd->assign = 0;
        for (int j = 0; j < nd->n_in; j++) {
            ag_tensor *x = nd->in[j];
            if (!x->requires_grad || x->grad != &p->pending)
                continue;
            bool once = x != nd->out;
            for (int k = 0; k < nd->n_in; k++)
                once = once && (k == j || nd->in[k] != x);
            if ((ok & (1u << j)) && once) {
                nd->assign |= 1u << j;
                x->grad = &p->assigned;
            } else {
                x->grad = &p->zeroed;
            }
        }
    }
}

/* memset on both cores: one thread cannot saturate the memory bus (16 ms vs 9 ms for the 160 MB of
 * configs/bench.ini). Below a few MB a thread team costs more than it saves. */
static void zero_fill(void *p, size_t bytes) {
    const size_t chunk = (size_t)1 << 20;
    size_t n = (bytes + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (bytes > 4 * chunk)
    for (size_t c = 0; c < n; c++) {
        size_t off = c * chunk, len = bytes - off < chunk ? bytes - off : chunk;
        memset((char *)p + off, 0, len);
    }
}

int ag_backward_prepare(ag_tape *t, ag_tensor *out) {
    if (!out || !out->requires_grad)
        return -1;
    /* Gradient buffers of intermediates come from the arena; inputs that are parameters already
     * carry caller-owned grads. Allocate them all before any backward runs so that backward
     * functions never allocate and cannot fail. They are carved out of one block. A buffer whose
     * first writer assigns it (ag_node.assign) needs no clearing; the rest are cleared in runs of
     * adjacent slices (one pass over contiguous memory is far cheaper than many small ones). */
    grad_plan plan = {0};
    visit_tensors(t, out, plan_count, &plan);
    if (!plan.total)
        return 0;
    plan.block = ag_arena_alloc(t->arena, plan.total);
    if (!plan.block) {
        visit_tensors(t, out, plan_unmark, &plan);
        return -1;
    }
    plan_writers(t, out, &plan);
    visit_tensors(t, out, plan_assign, &plan);
    if (plan.run_len)
        zero_fill(plan.run, plan.run_len);
    return 0;
}

int ag_backward(ag_tape *t, ag_tensor *out, const void *seed) {
    if (ag_backward_prepare(t, out) != 0)
        return -1;
    size_t es = ag_dtype_size(out->dtype);
    if (seed) {
        memcpy(out->grad, seed, out->numel * es);
    } else if (out->dtype == AG_F32) {
        for (size_t i = 0; i < out->numel; i++)
            ((float *)out->grad)[i] = 1.0f;
    } else {
        for (size_t i = 0; i < out->numel; i++)
            ((double *)out->grad)[i] = 1.0;
    }
    for (size_t i = t->n; i-- > 0;)
        ag_op_backward(t->nodes[i].op)(&t->nodes[i]);
    return 0;
}

/* ---- tensors ---- */

size_t ag_dtype_size(ag_dtype d) { return d == AG_F64 ? sizeof(double) : sizeof(float); }

static void set_shape(ag_tensor *t, int ndim, const int64_t *shape) {
    t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < AG_MAX_DIMS; i++) {
        t->shape[i] = i < ndim ? shape[i] : 1;
        if (i < ndim)
            t->numel *= (size_t)shape[i];
    }
}

void ag_tensor_wrap(ag_tensor *t, ag_dtype d, void *data, void *grad, int ndim,
                    const int64_t *shape) {
    memset(t, 0, sizeof *t);
    t->dtype = d;
    t->data = data;
    t->grad = grad;
    set_shape(t, ndim, shape);
}

ag_tensor *ag_tensor_new(ag_tape *tape, ag_dtype d, int ndim, const int64_t *shape) {
    ag_tensor *t = ag_tape_alloc(tape, sizeof *t);
    if (!t)
        return NULL;
    ag_tensor_wrap(t, d, NULL, NULL, ndim, shape);
    t->data = ag_tape_alloc(tape, t->numel * ag_dtype_size(d));
    return t->data ? t : NULL;
}

int ag_tensor_ensure_grad(ag_tape *tape, ag_tensor *t) {
    if (t->grad)
        return 0;
    t->grad = ag_arena_calloc(tape->arena, t->numel * ag_dtype_size(t->dtype));
    return t->grad ? 0 : -1;
}

bool ag_same_shape(const ag_tensor *a, const ag_tensor *b) {
    if (a->ndim != b->ndim)
        return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return false;
    return true;
}

size_t ag_cols(const ag_tensor *t) { return t->ndim ? (size_t)t->shape[t->ndim - 1] : 1; }
size_t ag_rows(const ag_tensor *t) { return t->numel / (ag_cols(t) ? ag_cols(t) : 1); }
