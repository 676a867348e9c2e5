/* data.h — the public face of qat's data module: RNG streams, the byte tokenizer, text corpora,
 * the train/val split, the resumable batch sampler and fixed validation batches.
 *
 * Tokens are bytes (vocab 256), so a corpus, a split and a token stream are all plain uint8_t
 * buffers; batches are int32_t because that is what the embedding op indexes with.
 *
 * Determinism: every random choice comes from a data_rng (xoshiro256**) whose whole state is four
 * uint64_t words — exactly what a checkpoint stores under /rng/NAME. Streams for different purposes
 * are derived from one run seed (data_rng_seed), so adding draws to one purpose never shifts
 * another.
 *
 * Errors: fallible functions return 0 on success and -1 on failure, writing a message that names
 * the path or dataset into the caller's err buffer (which may be NULL when errlen is 0). Ownership:
 * whoever creates destroys; every *_free accepts NULL.
 */
#ifndef QAT_DATA_DATA_H
#define QAT_DATA_DATA_H

#include <stddef.h>
#include <stdint.h>

/* ---- RNG streams (rng.c) ------------------------------------------------------------------- */

/* One stream per purpose; the names are the /rng/NAME dataset names in checkpoints. */
typedef enum {
    DATA_STREAM_INIT = 0, /* "init": parameter initialisation */
    DATA_STREAM_DATA,     /* "data": batch sampler epoch permutations */
    DATA_STREAM_FORMAT,   /* "format": the per-step quantization format sampler */
    DATA_STREAM_DROPOUT,  /* "dropout" */
    DATA_STREAM_SAMPLE,   /* "sample": token sampling in generation / GRPO */
    DATA_STREAM_COUNT
} data_stream;

const char *data_stream_name(data_stream s); /* "init", "data", ...; "?" when out of range */
int data_stream_from_name(const char *name); /* the data_stream, or -1 if unknown */

/* xoshiro256**. The four words are the entire state (no cached normal spare), so saving and
 * restoring them resumes the stream exactly. The all-zero state is invalid (it never leaves 0). */
typedef struct data_rng {
    uint64_t s[4];
} data_rng;

/* Independent stream `stream_id` (usually a data_stream) of run seed `seed`: the seed and id are
 * hashed with splitmix64 and four further splitmix64 outputs fill the state (never all zero). */
void data_rng_seed(data_rng *r, uint64_t seed, uint64_t stream_id);
uint64_t data_rng_next(data_rng *r);              /* next raw 64-bit output */
double data_rng_uniform(data_rng *r);             /* [0, 1) from the top 53 bits */
uint64_t data_rng_below(data_rng *r, uint64_t n); /* unbiased in [0, n); returns 0 for n == 0 */
/* Standard normal by Box–Muller, using the cosine branch only: exactly two outputs per call. The
 * value goes through libm log/cos/sqrt, so it may differ in the last bit across libm versions. */
double data_rng_normal(data_rng *r);
void data_rng_get_state(const data_rng *r, uint64_t s[4]);
int data_rng_set_state(data_rng *r, const uint64_t s[4]); /* -1 (r unchanged) if s is all zero */

/* ---- byte tokenizer (tokenizer.c) ---------------------------------------------------------- */

#define DATA_VOCAB_SIZE 256

/* tokens[i] = (unsigned char)text[i], i < n. */
void data_encode(const char *text, size_t n, int32_t *tokens);
/* out[i] = byte tokens[i], i < n (no terminator written). A token outside [0, 256) — possible when
 * a model's vocabulary is larger than the byte vocabulary — becomes '?'; returns how many did. */
size_t data_decode(const int32_t *tokens, size_t n, char *out);

/* ---- corpus (corpus.c) ---------------------------------------------------------------------- */

typedef struct data_corpus {
    uint8_t *bytes;          /* the text of every file read, concatenated; owned */
    size_t n_bytes;          /* number of bytes in bytes[] */
    size_t n_files;          /* text files read (including empty ones) */
    size_t n_skipped_binary; /* files skipped because they contain a NUL byte */
    size_t n_skipped_links;  /* symbolic links skipped inside a directory */
    size_t n_skipped_other;  /* FIFOs, sockets, devices skipped inside a directory */
} data_corpus;

/* Load `path`: a regular file, or a directory read recursively with its regular files taken in
 * strcmp order of their path relative to `path` (so "a-b" comes before "a/x"). Inside a directory,
 * symbolic links are skipped (fortunes' .u8 files link to the text beside them, which would then
 * count twice) and files containing a NUL byte are skipped as binary (fortunes' .dat indexes);
 * `path` itself may be a link. On success *c owns the bytes (release with data_corpus_free). On
 * failure *c is zeroed and err names the path: missing path, unreadable file or directory, a binary
 * file given directly, or a corpus without any text. */
int data_corpus_load(const char *path, data_corpus *c, char *err, size_t errlen);
void data_corpus_free(data_corpus *c); /* frees the bytes and zeroes *c; NULL is a no-op */
/* "read 43 files (2.6 MB), skipped 43 binary, 43 links" (plus ", N other" when N > 0). */
void data_corpus_summary(const data_corpus *c, char *out, size_t outlen);

/* ---- train/val split (split.c) -------------------------------------------------------------- */

#define DATA_SPLIT_BLOCK 4096

/* Split the byte stream into blocks of DATA_SPLIT_BLOCK bytes (the last may be shorter); block i
 * goes to validation iff floor((i+1)·f) > floor(i·f). So about a fraction f of the blocks, evenly
 * spaced over the whole stream, is held out, whatever order the files came in. */
int data_split_block_is_val(size_t i, double f);

typedef struct data_split {
    uint8_t *train; /* training blocks in stream order, contiguous; owned */
    size_t n_train;
    uint8_t *val; /* validation blocks in stream order, contiguous; owned */
    size_t n_val;
} data_split;

/* Copy bytes[0..n) into the two splits by the block rule above with val fraction f in (0, 1).
 * Fails (with *s zeroed) when f is outside (0, 1) or either split is shorter than seq_len + 1
 * bytes (one window of inputs plus the next-token target); the message names `name` (the corpus
 * path, or NULL), the size of each split and what is needed. */
int data_split_make(const uint8_t *bytes, size_t n, double f, size_t seq_len, const char *name,
                    data_split *s, char *err, size_t errlen);
void data_split_free(data_split *s); /* frees both buffers and zeroes *s; NULL is a no-op */

/* ---- batch sampler (sampler.c) -------------------------------------------------------------- */

/* Training batches: the token stream is cut into non-overlapping windows of T+1 tokens at stride T
 * (window w = tokens[w·T .. w·T+T]); each epoch visits every window exactly once, in the order of a
 * Fisher–Yates permutation drawn from the sampler's own RNG. A batch takes the next B windows,
 * continuing into the next epoch when one ends. */
typedef struct data_sampler data_sampler;

/* The whole resumable position: restoring it regenerates the epoch's permutation from rng, so the
 * batch sequence continues bit-identically. Checkpoints keep epoch and cursor under /data and rng
 * under /rng/data. */
typedef struct data_sampler_state {
    int64_t epoch;   /* epochs completed */
    int64_t cursor;  /* windows consumed in this epoch, in [0, windows per epoch) */
    uint64_t rng[4]; /* RNG state at the start of this epoch, before its permutation was drawn */
} data_sampler_state;

/* Create a sampler over tokens[0..n) (not copied: the caller keeps them alive and unchanged for the
 * sampler's lifetime) drawing B×T batches, with its RNG stream starting at *rng (copied; usually
 * data_rng_seed(.., seed, DATA_STREAM_DATA)). Everything is allocated here; data_sampler_next does
 * not allocate. Fails when B or T is 0, B·T overflows, or n < T + 1; `name` (NULL allowed) names
 * the token stream in the message. */
int data_sampler_create(const uint8_t *tokens, size_t n, size_t B, size_t T, const data_rng *rng,
                        const char *name, data_sampler **out, char *err, size_t errlen);
void data_sampler_free(data_sampler *s);
size_t data_sampler_windows(const data_sampler *s); /* windows per epoch: (n - 1) / T */
/* Fill x (B,T) with the next B windows' first T tokens and y (B,T) with the tokens one ahead. */
void data_sampler_next(data_sampler *s, int32_t *x, int32_t *y);
void data_sampler_get_state(const data_sampler *s, data_sampler_state *st);
/* Fails (sampler unchanged) when epoch < 0, cursor is outside [0, windows), or rng is all zero. */
int data_sampler_set_state(data_sampler *s, const data_sampler_state *st, char *err, size_t errlen);

/* ---- validation batches (val.c) ------------------------------------------------------------- */

/* The validation split is cut into the same windows (T+1 tokens at stride T from its start) and
 * read in order without shuffling: batch k, row b is window (k·B + b) mod W, W = (n - 1) / T, with
 * k taken modulo data_val_batch_count. So evaluation is the same set of windows on every call. */
size_t data_val_batch_count(size_t n, size_t B, size_t T); /* ceil(W / B); 0 if no window fits */
/* Fill x (B,T) and y (B,T) with validation batch batch_index. Returns -1 (x, y untouched) when B or
 * T is 0 or n < T + 1. */
int data_val_batch(const uint8_t *val, size_t n, size_t B, size_t T, size_t batch_index, int32_t *x,
                   int32_t *y);

#endif
