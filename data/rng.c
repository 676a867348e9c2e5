/* rng.c — xoshiro256** streams seeded through splitmix64, and the stream name table.
 *
 * xoshiro256** (Blackman & Vigna) is small, fast, passes BigCrush, and its whole state is four
 * words, which is what makes checkpointing an RNG trivial. splitmix64 is the seeding routine its
 * authors recommend: it turns any 64-bit seed, even 0 or 1, into a well-mixed state. */
#include "data/data.h"

#include <math.h>
#include <string.h>

/* Pinned to the enum: adding a stream without a name fails to compile. */
static const char *const stream_names[] = {"init", "data", "format", "dropout", "sample"};
_Static_assert(sizeof stream_names / sizeof stream_names[0] == DATA_STREAM_COUNT,
               "stream_names must name every data_stream");

const char *data_stream_name(data_stream s) {
    if ((int)s < 0 || s >= DATA_STREAM_COUNT)
        return "?";
    return stream_names[s];
}

int data_stream_from_name(const char *name) {
    if (!name)
        return -1;
    for (int i = 0; i < DATA_STREAM_COUNT; i++)
        if (strcmp(name, stream_names[i]) == 0)
            return i;
    return -1;
}

static uint64_t splitmix64_next(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void data_rng_seed(data_rng *r, uint64_t seed, uint64_t stream_id) {
    /* Hash the seed, mix the stream id in, hash again: neighbouring seeds and ids start far apart
     * rather than at neighbouring points of one splitmix64 sequence. */
    uint64_t a = seed;
    uint64_t b = splitmix64_next(&a) ^ stream_id;
    uint64_t c = splitmix64_next(&b);
    /* splitmix64's output is a bijection of its counter, so four consecutive outputs contain at
     * most one zero: the state can never be the invalid all-zero one. */
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64_next(&c);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t data_rng_next(data_rng *r) {
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double data_rng_uniform(data_rng *r) {
    /* 53 bits fill a double's mantissa exactly: every value k·2^-53 is equally likely. */
    return (double)(data_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

uint64_t data_rng_below(data_rng *r, uint64_t n) {
    if (n == 0)
        return 0;
    /* Reject the lowest (2^64 mod n) outputs, so the accepted range holds a whole number of copies
     * of [0, n) and the remainder is unbiased. At most half the outputs are ever rejected. */
    uint64_t threshold = (0 - n) % n;
    for (;;) {
        uint64_t x = data_rng_next(r);
        if (x >= threshold)
            return x % n;
    }
}

double data_rng_normal(data_rng *r) {
    /* No cached second value (the sine branch): the state stays exactly s[4], at the cost of one
     * extra draw per normal — irrelevant next to the model's own cost. */
    const double two_pi = 6.283185307179586476925286766559;
    double u1 = 1.0 - data_rng_uniform(r); /* (0, 1]: log(u1) is finite */
    double u2 = data_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(two_pi * u2);
}

void data_rng_get_state(const data_rng *r, uint64_t s[4]) { memcpy(s, r->s, sizeof r->s); }

int data_rng_set_state(data_rng *r, const uint64_t s[4]) {
    if ((s[0] | s[1] | s[2] | s[3]) == 0)
        return -1;
    memcpy(r->s, s, sizeof r->s);
    return 0;
}
