/* arena.c — the per-step bump allocator.
 *
 * Growth is allowed so that nobody has to predict activation sizes, but it is transient: the first
 * reset after an overflow frees the overflow chunks and re-allocates the main block at the peak
 * size seen, so from the second step on a training step performs no malloc at all. */
#include "autograd/ag.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN 64

typedef struct chunk {
    struct chunk *next;
    size_t size, used;
    unsigned char *mem; /* ARENA_ALIGN-aligned */
} chunk;

struct ag_arena {
    chunk main;      /* steady-state block */
    chunk *overflow; /* chunks added during this step, newest first */
    size_t limit, used, peak, grows;
    char err[160];
};

static size_t round_up(size_t n) { return (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1); }

static int chunk_init(chunk *c, size_t size) {
    c->next = NULL;
    c->size = round_up(size);
    c->used = 0;
    c->mem = c->size ? aligned_alloc(ARENA_ALIGN, c->size) : NULL;
    return (c->size && !c->mem) ? -1 : 0;
}

ag_arena *ag_arena_create(size_t initial, size_t limit) {
    ag_arena *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->limit = limit;
    if (chunk_init(&a->main, initial) != 0) {
        free(a);
        return NULL;
    }
    return a;
}

static void free_overflow(ag_arena *a) {
    while (a->overflow) {
        chunk *c = a->overflow;
        a->overflow = c->next;
        free(c->mem);
        free(c);
    }
}

void ag_arena_free(ag_arena *a) {
    if (!a)
        return;
    free_overflow(a);
    free(a->main.mem);
    free(a);
}

static void *take(chunk *c, size_t n) {
    if (c->size - c->used < n)
        return NULL;
    void *p = c->mem + c->used;
    c->used += n;
    return p;
}

void *ag_arena_alloc(ag_arena *a, size_t bytes) {
    size_t n = round_up(bytes ? bytes : 1);
    if (a->limit && a->used + n > a->limit) {
        if (!a->err[0])
            snprintf(a->err, sizeof a->err,
                     "step arena full: need %zu more bytes, %zu of %zu in use (raise the limit)", n,
                     a->used, a->limit);
        return NULL;
    }
    void *p = take(&a->main, n);
    if (!p && a->overflow)
        p = take(a->overflow, n);
    if (!p) {
        chunk *c = malloc(sizeof *c);
        size_t want = n > a->main.size / 2 ? n : a->main.size / 2;
        if (!c || chunk_init(c, want < ((size_t)1 << 20) ? ((size_t)1 << 20) : want) != 0) {
            free(c);
            if (!a->err[0])
                snprintf(a->err, sizeof a->err, "step arena: out of memory growing by %zu bytes",
                         want);
            return NULL;
        }
        c->next = a->overflow;
        a->overflow = c;
        a->grows++;
        p = take(c, n);
    }
    a->used += n;
    if (a->used > a->peak)
        a->peak = a->used;
    return p;
}

void *ag_arena_calloc(ag_arena *a, size_t bytes) {
    void *p = ag_arena_alloc(a, bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

void ag_arena_reset(ag_arena *a) {
    if (a->overflow) {
        /* Consolidate: one block big enough for the peak, so the next step fits. */
        free_overflow(a);
        free(a->main.mem);
        if (chunk_init(&a->main, a->peak + a->peak / 8) != 0)
            chunk_init(&a->main, 0); /* allocation will be retried, and reported, on demand */
        a->grows++;
    }
    a->main.used = 0;
    a->used = 0;
    a->err[0] = '\0';
}

size_t ag_arena_used(const ag_arena *a) { return a->used; }
size_t ag_arena_peak(const ag_arena *a) { return a->peak; }
size_t ag_arena_capacity(const ag_arena *a) { return a->main.size; }
size_t ag_arena_grow_count(const ag_arena *a) { return a->grows; }
const char *ag_arena_error(const ag_arena *a) { return a->err; }
