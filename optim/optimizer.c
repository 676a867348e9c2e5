/* optimizer.c — creating and freeing an optimizer, and dispatching one step to the update kernels.
 *
 * All state lives in two allocations made here (names and float buffers), so a step never
 * allocates and the state tensors can be handed to the checkpoint writer as they are. */
#include "optim/opt_internal.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OPT_ALIGN_FLOATS 16 /* 64 bytes: every state tensor starts on a cache line */

const char *opt_kind_name(opt_kind k) {
    switch (k) {
    case OPT_ADAMW:
        return "adamw";
    case OPT_SGD:
        return "sgd";
    default:
        return "unknown";
    }
}

opt_config opt_config_defaults(opt_kind kind) {
    opt_config c;
    c.kind = kind;
    c.beta1 = 0.9;
    c.beta2 = 0.999;
    c.eps = 1e-8;
    c.weight_decay = kind == OPT_ADAMW ? 0.01 : 0.0;
    c.momentum = 0.0;
    return c;
}

/* x in [lo, hi); written so that NaN fails too. */
static int check_range(const char *kind, const char *key, double x, double lo, double hi, char *err,
                       size_t errlen) {
    if (lo <= x && x < hi)
        return 0;
    snprintf(err, errlen, "opt_create: %s %s = %g: must be in [%g, %g)", kind, key, x, lo, hi);
    return -1;
}

static int check_config(const opt_config *c, char *err, size_t errlen) {
    const char *k = opt_kind_name(c->kind);
    if (c->kind != OPT_ADAMW && c->kind != OPT_SGD) {
        snprintf(err, errlen, "opt_create: unknown optimizer kind %d (expected adamw or sgd)",
                 (int)c->kind);
        return -1;
    }
    if (check_range(k, "weight_decay", c->weight_decay, 0.0, HUGE_VAL, err, errlen) != 0)
        return -1;
    if (c->kind == OPT_SGD)
        return check_range(k, "momentum", c->momentum, 0.0, 1.0, err, errlen);
    if (check_range(k, "beta1", c->beta1, 0.0, 1.0, err, errlen) != 0 ||
        check_range(k, "beta2", c->beta2, 0.0, 1.0, err, errlen) != 0)
        return -1;
    /* eps = 0 would divide 0 by 0 for a parameter whose gradient has always been zero. */
    if (!(c->eps > 0.0 && c->eps < HUGE_VAL)) {
        snprintf(err, errlen, "opt_create: adamw eps = %g: must be > 0 and finite", c->eps);
        return -1;
    }
    return 0;
}

/* Names must be present and unique because they become checkpoint dataset names. Quadratic, but
 * it runs once over at most a few thousand parameters. */
static int check_params(const opt_param *params, size_t n, char *err, size_t errlen) {
    if (n > 0 && !params) {
        snprintf(err, errlen, "opt_create: params is NULL but n = %zu", n);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const opt_param *p = &params[i];
        if (!p->name || !p->name[0]) {
            snprintf(err, errlen, "opt_create: parameter %zu has no name", i);
            return -1;
        }
        if (p->numel > 0 && (!p->data || !p->grad)) {
            snprintf(err, errlen, "opt_create: parameter '%s' (%zu elements) has a NULL %s",
                     p->name, p->numel, p->data ? "grad" : "data");
            return -1;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(params[j].name, p->name) == 0) {
                snprintf(err, errlen, "opt_create: parameters %zu and %zu are both named '%s'", j,
                         i, p->name);
                return -1;
            }
    }
    return 0;
}

static size_t round_floats(size_t n) {
    return (n + OPT_ALIGN_FLOATS - 1) / OPT_ALIGN_FLOATS * OPT_ALIGN_FLOATS;
}

/* Lay out names and buffers for states_per_param tensors per parameter ("/m" then "/v"). */
static int alloc_states(opt_optimizer *o, char *err, size_t errlen) {
    static const char *const suffix[2] = {"/m", "/v"};
    size_t k = o->states_per_param, n = o->n_params;
    if (k == 0)
        return 0;
    size_t name_bytes = 0, floats = 0;
    for (size_t i = 0; i < n; i++) {
        name_bytes += k * (strlen(o->params[i].name) + 3);
        size_t r = round_floats(o->params[i].numel);
        if (r < o->params[i].numel || r > (SIZE_MAX / sizeof(float) - floats) / k) {
            snprintf(err, errlen, "opt_create: state size overflows at parameter '%s'",
                     o->params[i].name);
            return -1;
        }
        floats += k * r;
    }
    o->states = calloc(n * k, sizeof *o->states);
    o->names = malloc(name_bytes);
    o->buffer =
        floats ? aligned_alloc(OPT_ALIGN_FLOATS * sizeof(float), floats * sizeof(float)) : NULL;
    if (!o->states || !o->names || (floats && !o->buffer)) {
        snprintf(err, errlen, "opt_create: out of memory for %s state (%zu bytes)",
                 opt_kind_name(o->cfg.kind), floats * sizeof(float));
        return -1;
    }
    if (floats)
        memset(o->buffer, 0, floats * sizeof(float));
    char *name = o->names;
    float *data = o->buffer;
    for (size_t i = 0; i < n; i++)
        for (size_t s = 0; s < k; s++) {
            opt_state *st = &o->states[o->n_states++];
            size_t len = strlen(o->params[i].name);
            memcpy(name, o->params[i].name, len);
            memcpy(name + len, suffix[s], 3);
            st->name = name;
            st->data = data;
            st->numel = o->params[i].numel;
            name += len + 3;
            data += round_floats(st->numel);
        }
    return 0;
}

opt_optimizer *opt_create(const opt_config *cfg, const opt_param *params, size_t n, char *err,
                          size_t errlen) {
    if (!cfg) {
        snprintf(err, errlen, "opt_create: config is NULL");
        return NULL;
    }
    if (check_config(cfg, err, errlen) != 0 || check_params(params, n, err, errlen) != 0)
        return NULL;
    opt_optimizer *o = calloc(1, sizeof *o);
    if (!o) {
        snprintf(err, errlen, "opt_create: out of memory");
        return NULL;
    }
    o->cfg = *cfg;
    o->params = params;
    o->n_params = n;
    o->states_per_param = cfg->kind == OPT_ADAMW ? 2 : (cfg->momentum > 0.0 ? 1 : 0);
    if (alloc_states(o, err, errlen) != 0) {
        opt_free(o);
        return NULL;
    }
    return o;
}

void opt_free(opt_optimizer *o) {
    if (!o)
        return;
    free(o->buffer);
    free(o->names);
    free(o->states);
    free(o);
}

/* Scalars are formed in double and rounded to float once, as PyTorch does with Python scalars. */
static void step_adamw(opt_optimizer *o, double lr) {
    const opt_config *c = &o->cfg;
    double t = (double)(o->step + 1);
    opt_adamw_coef k;
    k.beta1 = (float)c->beta1;
    k.one_minus_beta1 = (float)(1.0 - c->beta1);
    k.beta2 = (float)c->beta2;
    k.one_minus_beta2 = (float)(1.0 - c->beta2);
    k.step_size = (float)(lr / (1.0 - pow(c->beta1, t)));
    k.bc2_sqrt = (float)sqrt(1.0 - pow(c->beta2, t));
    k.eps = (float)c->eps;
    for (size_t i = 0; i < o->n_params; i++) {
        const opt_param *p = &o->params[i];
        if (p->numel == 0)
            continue;
        k.decay = p->decay ? (float)(1.0 - lr * c->weight_decay) : 1.0f;
        opt_adamw_update(p->data, p->grad, o->states[2 * i].data, o->states[2 * i + 1].data,
                         p->numel, k);
    }
}

static void step_sgd(opt_optimizer *o, double lr) {
    const opt_config *c = &o->cfg;
    bool momentum = o->states_per_param == 1;
    for (size_t i = 0; i < o->n_params; i++) {
        const opt_param *p = &o->params[i];
        if (p->numel == 0)
            continue;
        opt_sgd_update(p->data, p->grad, momentum ? o->states[i].data : NULL, p->numel, (float)lr,
                       p->decay ? (float)c->weight_decay : 0.0f, (float)c->momentum, o->step == 0);
    }
}

void opt_step(opt_optimizer *o, double lr) {
    if (o->cfg.kind == OPT_ADAMW)
        step_adamw(o, lr);
    else
        step_sgd(o, lr);
    o->step++;
}

const opt_config *opt_get_config(const opt_optimizer *o) { return &o->cfg; }
