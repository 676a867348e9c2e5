/* sample.c — the next token from logits: greedy, or a draw at a temperature restricted to the
 * top-k and the top-p (nucleus) of the distribution. Probabilities are computed in double. */
#include "train/run/generate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int qt_sampler_init(qt_sampler *s, int V, const qt_sample_opts *o, char *err, size_t errlen) {
    *s = (qt_sampler){0};
    if (!isfinite(o->temperature) || o->temperature < 0) {
        snprintf(err, errlen, "temperature must be a finite number >= 0, got %g", o->temperature);
        return -1;
    }
    if (o->top_k < 0) {
        snprintf(err, errlen, "top-k must be >= 0 (0 = off), got %d", o->top_k);
        return -1;
    }
    if (!(o->top_p > 0 && o->top_p <= 1)) {
        snprintf(err, errlen, "top-p must be in (0, 1] (1 = off), got %g", o->top_p);
        return -1;
    }
    if (V < 1 || !(s->cand = malloc((size_t)V * sizeof *s->cand))) {
        snprintf(err, errlen, "out of memory allocating the sampler (vocabulary %d)", V);
        return -1;
    }
    s->o = *o;
    s->V = V;
    return 0;
}

void qt_sampler_free(qt_sampler *s) {
    if (!s)
        return;
    free(s->cand);
    *s = (qt_sampler){0};
}

static int32_t argmax(const float *logits, int V) {
    int32_t best = 0;
    for (int32_t i = 1; i < V; i++)
        if (logits[i] > logits[best]) /* strict: ties keep the lowest id */
            best = i;
    return best;
}

/* Most likely first; ties by the lower id, so the order is total and the result deterministic. */
static int by_logit(const void *pa, const void *pb) {
    const qt_sample_cand *a = pa, *b = pb;
    if (a->logit != b->logit)
        return a->logit > b->logit ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

int qt_sample_candidates(qt_sampler *s, const float *logits) {
    const qt_sample_opts *o = &s->o;
    if (o->temperature == 0 || o->top_k == 1) {
        int32_t id = argmax(logits, s->V);
        s->cand[0] = (qt_sample_cand){.id = id, .logit = logits[id], .p = 1};
        return 1;
    }
    for (int32_t i = 0; i < s->V; i++)
        s->cand[i] = (qt_sample_cand){.id = i, .logit = logits[i]};
    qsort(s->cand, (size_t)s->V, sizeof *s->cand, by_logit); /* in place: no allocation */
    int n = o->top_k > 0 && o->top_k < s->V ? o->top_k : s->V;
    double mx = s->cand[0].logit, sum = 0;
    for (int i = 0; i < n; i++)
        sum += s->cand[i].p = exp(((double)s->cand[i].logit - mx) / o->temperature);
    /* Nucleus: the shortest prefix whose mass reaches top_p (at least one token). */
    double mass = 0;
    int keep = n;
    for (int i = 0; i < n; i++) {
        s->cand[i].p /= sum;
        mass += s->cand[i].p;
        if (o->top_p < 1 && mass >= o->top_p) {
            keep = i + 1;
            break;
        }
    }
    double kept = 0;
    for (int i = 0; i < keep; i++)
        kept += s->cand[i].p;
    for (int i = 0; i < keep; i++)
        s->cand[i].p /= kept;
    return keep;
}

int32_t qt_sample(qt_sampler *s, const float *logits, data_rng *rng) {
    if (s->o.temperature == 0 || s->o.top_k == 1)
        return argmax(logits, s->V);
    int n = qt_sample_candidates(s, logits);
    double u = data_rng_uniform(rng), acc = 0;
    for (int i = 0; i < n; i++) {
        acc += s->cand[i].p;
        if (u < acc)
            return s->cand[i].id;
    }
    return s->cand[n - 1].id; /* u within rounding of 1 */
}
