/* kvcache.c — the KV cache behind generation: qt_model_logits_at runs the new rows through every
 * block and hands each block's attention to attend() here, which appends the rows' keys and
 * values to the cache and attends over positions 0..p for the row at position p. */
#include "train/run/generate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Arena reserved up front; qt_kv_step grows it only while it first reaches its largest step (the
 * prompt), after which ag_tape_reset keeps one block of the peak size. */
#define KV_ARENA_INITIAL ((size_t)1 << 20)
#define KV_MAX_NODES 16 /* nothing is recorded: the tape does not record */

qt_kv_cache *qt_kv_create(qt_model *m, int capacity, char *err, size_t errlen) {
    if (capacity < 1 || capacity > m->T) {
        snprintf(err, errlen, "KV cache capacity %d is outside 1..%d (model.seq_len)", capacity,
                 m->T);
        return NULL;
    }
    qt_kv_cache *c = calloc(1, sizeof *c);
    if (!c)
        goto oom;
    c->m = m;
    c->cap = capacity;
    size_t n = (size_t)m->L * (size_t)capacity * (size_t)m->C;
    c->k = malloc(n * sizeof *c->k);
    c->v = malloc(n * sizeof *c->v);
    c->scores = malloc((size_t)capacity * sizeof *c->scores);
    c->tape = ag_tape_create(KV_ARENA_INITIAL, 0, KV_MAX_NODES);
    if (!c->k || !c->v || !c->scores || !c->tape)
        goto oom;
    ag_tape_set_recording(c->tape, false);
    return c;
oom:
    snprintf(err, errlen,
             "out of memory allocating a KV cache of %d positions (%d layers, d_model %d)",
             capacity, m->L, m->C);
    qt_kv_free(c);
    return NULL;
}

void qt_kv_reset(qt_kv_cache *c) {
    c->len = 0;
    c->rows_read = 0;
}

void qt_kv_free(qt_kv_cache *c) {
    if (!c)
        return;
    ag_tape_free(c->tape);
    free(c->k);
    free(c->v);
    free(c->scores);
    free(c);
}

static float dot(const float *restrict a, const float *restrict b, int n) {
    float s = 0;
    for (int i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* qt_attend_fn: rows q, k, v [1,T,C] at positions pos0..pos0+T-1 of `layer`. Their keys and
 * values go to the cache first, so row i then attends causally over cached rows 0..pos0+i —
 * softmax(q kᵀ/√HS) v per head, as ag_attention computes it (scale, max-subtracted exp, then
 * multiplication by the inverse sum); only the summation order differs. */
static ag_tensor *attend(void *ctx, ag_tape *t, int layer, int64_t pos0, ag_tensor *q, ag_tensor *k,
                         ag_tensor *v) {
    qt_kv_cache *c = ctx;
    if (!q || !k || !v || q->dtype != AG_F32)
        return NULL;
    int T = (int)q->shape[1], C = c->m->C, NH = c->m->NH, HS = C / NH;
    size_t lay = (size_t)layer * (size_t)c->cap * (size_t)C;
    float *kc = c->k + lay, *vc = c->v + lay; /* [cap, C] */
    memcpy(kc + (size_t)pos0 * C, k->data, (size_t)T * C * sizeof *kc);
    memcpy(vc + (size_t)pos0 * C, v->data, (size_t)T * C * sizeof *vc);
    ag_tensor *y = ag_tensor_new(t, AG_F32, 3, q->shape); /* (1,T,C) */
    if (!y)
        return NULL;
    const float *qd = q->data;
    float *yd = y->data, *s = c->scores;
    float scale = 1 / sqrtf((float)HS);
    for (int i = 0; i < T; i++) {
        int n = (int)pos0 + i + 1; /* keys 0..pos0+i */
        c->rows_read += (uint64_t)n;
        for (int h = 0; h < NH; h++) {
            const float *qh = qd + (size_t)i * C + (size_t)h * HS;
            float *yh = yd + (size_t)i * C + (size_t)h * HS;
            float mx = -INFINITY;
            for (int j = 0; j < n; j++) {
                s[j] = scale * dot(qh, kc + (size_t)j * C + (size_t)h * HS, HS);
                mx = s[j] > mx ? s[j] : mx;
            }
            float sum = 0;
            for (int j = 0; j < n; j++) {
                s[j] = expf(s[j] - mx);
                sum += s[j];
            }
            float inv = 1 / sum;
            memset(yh, 0, (size_t)HS * sizeof *yh);
            for (int j = 0; j < n; j++) {
                const float *vj = vc + (size_t)j * C + (size_t)h * HS;
                float p = s[j] * inv;
                for (int d = 0; d < HS; d++)
                    yh[d] += p * vj[d];
            }
        }
    }
    return y;
}

int qt_kv_step(qt_kv_cache *c, const int32_t *x, int n, float *logits, char *err, size_t errlen) {
    const qt_model *m = c->m;
    if (n < 1 || n > c->cap - c->len) {
        snprintf(err, errlen,
                 "cannot feed %d token(s) at position %d: the KV cache holds %d positions "
                 "(model.seq_len %d)",
                 n, c->len, c->cap, m->T);
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (x[i] < 0 || x[i] >= m->V) {
            snprintf(err, errlen, "token %d at position %d is outside the vocabulary 0..%d",
                     (int)x[i], c->len + i, m->V - 1);
            return -1;
        }
    ag_tape_reset(c->tape);
    ag_tensor *y = qt_model_logits_at(c->m, c->tape, x, n, c->len, attend, c); /* (1,n,V) */
    if (!y) {
        snprintf(err, errlen, "forward pass at position %d failed: %s", c->len,
                 ag_tape_error(c->tape)[0] ? ag_tape_error(c->tape) : "invalid model state");
        ag_tape_reset(c->tape);
        return -1;
    }
    memcpy(logits, (const float *)y->data + (size_t)(n - 1) * m->V, (size_t)m->V * sizeof *logits);
    c->len += n;
    ag_tape_reset(c->tape);
    return 0;
}
