/* generate.h — text generation: a KV cache that runs the model one new token (or a prompt) at a
 * time, and the sampling of the next token (temperature, top-k, top-p).
 *
 * The cache keeps, per layer, the keys (after rotary positions) and values of every position fed
 * so far; a step computes only the new rows through every block and attends over the cache, so
 * a token at position p costs O(p) attention work and no recomputation of earlier positions.
 * The model's quantization (m->quant) applies exactly as in qt_model_logits, so generation at a
 * format matches evaluation at that format. */
#ifndef QAT_TRAIN_RUN_GENERATE_H
#define QAT_TRAIN_RUN_GENERATE_H

#include "autograd/ag.h"
#include "data/data.h"
#include "train/model/gpt.h"

#include <stddef.h>
#include <stdint.h>

/* ---- KV cache (kvcache.c) ---- */

typedef struct qt_kv_cache {
    qt_model *m;   /* borrowed: must outlive the cache; its weights and quant may not change
                      between qt_kv_reset and the steps that follow */
    int cap;       /* positions it holds (<= m->T) */
    int len;       /* positions filled: the next token goes to position len */
    float *k, *v;  /* [L, cap, C] each; k after rotary positions */
    float *scores; /* [cap] one row's attention weights (scratch) */
    ag_tape *tape; /* non-recording; its arena is reset at every step */
    /* Cached rows (of one layer, all heads) read by attention since the last reset: a step at
     * position p adds L·(p+1). Lets tests check that no earlier position is recomputed. */
    uint64_t rows_read;
} qt_kv_cache;

/* A cache for model m holding up to `capacity` positions (1..m->T). NULL with a message on a bad
 * capacity or when memory runs out. */
qt_kv_cache *qt_kv_create(qt_model *m, int capacity, char *err, size_t errlen);
void qt_kv_reset(qt_kv_cache *c); /* forget every position (len = 0) */
void qt_kv_free(qt_kv_cache *c);  /* NULL is a no-op */

/* Feed tokens x[0..n) at positions len..len+n-1 (a prompt, n > 1, or one decode step, n = 1) and
 * write the logits [V] of the last one — the distribution of the token at position len+n — to
 * logits. Returns 0, or -1 with a message (n < 1, the cache would overflow, a token outside the
 * vocabulary, arena failure); len is unchanged then. Steps after the first largest one allocate
 * nothing. */
int qt_kv_step(qt_kv_cache *c, const int32_t *x, int n, float *logits, char *err, size_t errlen);

/* ---- sampling (sample.c) ---- */

typedef struct qt_sample_opts {
    double temperature; /* 0: greedy (argmax, ties to the lowest id) */
    int top_k;          /* > 0: only the k most likely tokens; 0 = all */
    double top_p;       /* (0, 1]: the smallest most-likely set with mass >= top_p; 1 = all */
} qt_sample_opts;

/* One candidate of the next token: its id and probability. */
typedef struct qt_sample_cand {
    int32_t id;
    float logit;
    double p;
} qt_sample_cand;

/* Scratch for vocabularies up to V (allocated once: sampling never allocates). */
typedef struct qt_sampler {
    qt_sample_opts o;
    int V;
    qt_sample_cand *cand; /* [V] */
} qt_sampler;

/* Returns 0, or -1 with a message naming the bad option (temperature < 0 or not finite, top_k <
 * 0, top_p outside (0, 1]) or when memory runs out. */
int qt_sampler_init(qt_sampler *s, int V, const qt_sample_opts *o, char *err, size_t errlen);
void qt_sampler_free(qt_sampler *s); /* zeroed sampler is a no-op */

/* The candidates sampling draws from, most likely first (ties: lower id first), with
 * probabilities softmax(logits / temperature) restricted to the top-k then cut to the smallest
 * prefix of mass >= top_p, renormalised to sum to 1. Written to s->cand; returns their count.
 * Temperature 0 or top_k 1: the argmax alone. */
int qt_sample_candidates(qt_sampler *s, const float *logits);
/* The next token: the argmax for temperature 0 or top_k 1 (no draw), else one draw of
 * data_rng_uniform(rng) over qt_sample_candidates. Deterministic for a given rng state. */
int32_t qt_sample(qt_sampler *s, const float *logits, data_rng *rng);

#endif
