/* state.c — optimizer state seen from outside: the step counter and the named state tensors that
 * checkpoints save and restore. */
#include "optim/opt_internal.h"

#include <stdio.h>
#include <string.h>

int64_t opt_get_step(const opt_optimizer *o) { return o->step; }

void opt_set_step(opt_optimizer *o, int64_t t) { o->step = t < 0 ? 0 : t; }

size_t opt_state_count(const opt_optimizer *o) { return o->n_states; }

const opt_state *opt_state_at(const opt_optimizer *o, size_t i) {
    return i < o->n_states ? &o->states[i] : NULL;
}

int opt_state_load(opt_optimizer *o, const char *name, const float *data, size_t numel, char *err,
                   size_t errlen) {
    if (!name) {
        snprintf(err, errlen, "opt_state_load: state name is NULL");
        return -1;
    }
    for (size_t i = 0; i < o->n_states; i++) {
        opt_state *s = &o->states[i];
        if (strcmp(s->name, name) != 0)
            continue;
        if (numel != s->numel) {
            snprintf(err, errlen,
                     "optimizer state '%s' has %zu elements, expected %zu (the parameter's size)",
                     name, numel, s->numel);
            return -1;
        }
        if (numel > 0 && !data) {
            snprintf(err, errlen, "opt_state_load: data for '%s' is NULL", name);
            return -1;
        }
        if (numel > 0)
            memcpy(s->data, data, numel * sizeof(float));
        return 0;
    }
    if (o->n_states == 0) {
        snprintf(err, errlen,
                 "optimizer state '%s' does not fit this optimizer: %s without momentum keeps no "
                 "state",
                 name, opt_kind_name(o->cfg.kind));
        return -1;
    }
    /* Say whether the parameter or only the suffix is unknown: they point at different mistakes
     * (another model vs another optimizer). */
    const char *slash = strrchr(name, '/');
    size_t base = slash ? (size_t)(slash - name) : strlen(name);
    for (size_t i = 0; i < o->n_params; i++) {
        const char *pn = o->params[i].name;
        if (strlen(pn) != base || strncmp(pn, name, base) != 0)
            continue;
        if (o->states_per_param == 2)
            snprintf(err, errlen,
                     "optimizer state '%s' does not fit this optimizer: %s keeps '%s/m' and "
                     "'%s/v' for that parameter",
                     name, opt_kind_name(o->cfg.kind), pn, pn);
        else
            snprintf(err, errlen,
                     "optimizer state '%s' does not fit this optimizer: %s keeps only '%s/m' for "
                     "that parameter",
                     name, opt_kind_name(o->cfg.kind), pn);
        return -1;
    }
    snprintf(err, errlen,
             "optimizer state '%s' does not fit this optimizer: none of its %zu parameters is "
             "named '%.*s'",
             name, o->n_params, (int)base, name);
    return -1;
}
