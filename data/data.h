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

/* ==== arithmetic tasks for SFT / GRPO (task.c) =============================================== */

/* Verifiable arithmetic problems as byte text, scored by exact match.
 *
 * Format. A problem is the prompt "A+B=" (or "A*B=") in plain decimal, no spaces, and its answer
 * is the decimal result with no sign, no leading zero (0 is "0") and no spaces, followed by the
 * terminator byte DATA_TASK_TERMINATOR ('\n'). An SFT sample is therefore prompt + answer + "\n",
 * e.g. "12+34=46\n"; the model sees the prompt and must generate "46\n". The answer text stored
 * in data_task_problem holds the digits only, without the terminator.
 *
 * Operands. Each operand independently draws its digit count d uniformly from
 * [min_digits, max_digits], then a value uniformly among the d-digit numbers: [10^(d-1), 10^d) for
 * d > 1 (so no leading zero) and [0, 10) for d == 1. So with digits 1..3, 1-, 2- and 3-digit
 * operands are equally common (not 90% 3-digit). With max_digits <= 9 every operand fits in 30
 * bits and every product in 18 digits, so all arithmetic is exact in uint64_t.
 *
 * Draw order (part of the determinism contract): for DATA_TASK_MIXED first the op (one
 * data_rng_below(2): 0 is '+', 1 is '*'), then for a and then b: its digit count (one
 * data_rng_below, drawn even when min == max) and its value (one data_rng_below). Training
 * problems come from whatever stream the trainer passes (e.g. data_rng_seed(.., seed,
 * DATA_STREAM_DATA), checkpointed like the others); the eval set has its own stream below. */

typedef enum {
    DATA_TASK_ADD = 0, /* "add": every problem is A+B */
    DATA_TASK_MUL,     /* "mul": every problem is A*B */
    DATA_TASK_MIXED,   /* "mixed": each problem picks + or * with probability 1/2 */
    DATA_TASK_KIND_COUNT
} data_task_kind;

const char *data_task_kind_name(int kind);      /* "add", "mul", "mixed"; "?" when out of range */
int data_task_kind_from_name(const char *name); /* the data_task_kind, or -1 if unknown */

#define DATA_TASK_MAX_DIGITS 9    /* operand digits are in [1, DATA_TASK_MAX_DIGITS] */
#define DATA_TASK_TERMINATOR '\n' /* ends every answer */
#define DATA_TASK_PAD 0           /* x after a sample in SFT batches: NUL never occurs in one */
#define DATA_TASK_PROMPT_CAP 24   /* "999999999*999999999=" is 20 bytes, plus NUL */
#define DATA_TASK_ANSWER_CAP 24   /* 999999999^2 has 18 digits, plus NUL */
/* The stream id of the held-out evaluation set ("taskeval" in ASCII): far from the data_stream
 * ids, so the eval set never shares a stream with anything a trainer draws. */
#define DATA_TASK_EVAL_STREAM 0x7461736B6576616CULL

typedef struct data_task_cfg {
    int kind;                   /* a data_task_kind */
    int min_digits, max_digits; /* operand digit counts, 1 <= min <= max <= DATA_TASK_MAX_DIGITS */
} data_task_cfg;

/* 2-digit addition: {DATA_TASK_ADD, 2, 2}. */
void data_task_cfg_default(data_task_cfg *cfg);
/* 0 if cfg is usable, else -1 with a message naming the field, its value and the valid range,
 * e.g. "task.min_digits = 3 > task.max_digits = 2 (need min_digits <= max_digits)". */
int data_task_cfg_validate(const data_task_cfg *cfg, char *err, size_t errlen);

typedef struct data_task_problem {
    uint64_t a, b;                     /* operands, each < 10^DATA_TASK_MAX_DIGITS */
    uint64_t result;                   /* a + b or a * b */
    char op;                           /* '+' or '*' */
    char prompt[DATA_TASK_PROMPT_CAP]; /* "12+34=", NUL-terminated */
    size_t prompt_len;                 /* strlen(prompt) */
    char answer[DATA_TASK_ANSWER_CAP]; /* "46": digits only, no terminator, NUL-terminated */
    size_t answer_len;                 /* strlen(answer), >= 1 */
} data_task_problem;

/* Fill *p for a op b (op '+' or '*', operands < 10^DATA_TASK_MAX_DIGITS); -1 (p untouched)
 * otherwise. For tests and for callers that build problems by hand. */
int data_task_make(char op, uint64_t a, uint64_t b, data_task_problem *p);
/* Draw the next problem from rng in the draw order above. Returns -1 (rng and p untouched) if cfg
 * is invalid; validate once with data_task_cfg_validate to get a message. */
int data_task_next(const data_task_cfg *cfg, data_rng *rng, data_task_problem *p);

/* Bytes of the longest prompt cfg can draw ("A+B=" with max_digits operands); cfg is not
 * validated. */
size_t data_task_max_prompt_len(const data_task_cfg *cfg);
/* Bytes of the longest problem cfg can produce: prompt, answer and terminator, e.g. 10 for 2-digit
 * addition ("99+99=198\n") and 11 for 2-digit mul/mixed ("99*99=9801\n"). 0 if cfg is invalid.
 * A model needs a context of data_task_max_len(cfg) - 1 tokens: the terminator is only ever a
 * target (generated last, never fed back). */
size_t data_task_max_len(const data_task_cfg *cfg);

/* ---- held-out evaluation set ---- */

/* out[0..n) = n *distinct* problems (no two share op, a and b) drawn as by data_task_next from the
 * stream data_rng_seed(.., seed, DATA_TASK_EVAL_STREAM): a function of (cfg, seed) alone, so it is
 * the same set on every call and whatever the training streams have drawn. It is not disjoint from
 * anything by itself: training draws may hit the same problems unless the trainer excludes them
 * (pass the set as held_out to data_task_sft_batch / data_task_prompts, or test each problem with
 * data_task_in_set). Fails when cfg is invalid, n exceeds the number of distinct problems cfg can
 * produce, or memory runs out (a temporary hash set of 16·n to 32·n bytes). */
int data_task_eval_set(const data_task_cfg *cfg, size_t n, uint64_t seed, data_task_problem *out,
                       char *err, size_t errlen);
/* 1 if set[0..n) holds a problem with p's op and operands, else 0. A linear scan, O(n): fine for
 * eval sets of thousands against one batch per step. Operands match in order: "34+12=" is a
 * different prompt from "12+34=" and is not considered held out. */
int data_task_in_set(const data_task_problem *set, size_t n, const data_task_problem *p);

/* ---- reward ---- */

/* Why a completion does or does not parse as an answer. */
typedef enum {
    DATA_TASK_PARSE_OK = 0,       /* digits, no leading zero, then the terminator */
    DATA_TASK_PARSE_EMPTY,        /* no bytes, or the terminator first */
    DATA_TASK_PARSE_BAD_CHAR,     /* a byte other than a digit before the terminator */
    DATA_TASK_PARSE_LEADING_ZERO, /* "0" followed by more digits */
    DATA_TASK_PARSE_TOO_LONG,     /* more than 19 digits (would not fit in uint64_t) */
    DATA_TASK_PARSE_NO_TERMINATOR /* digits up to the end of the completion, no '\n' */
} data_task_parse_status;

const char *data_task_parse_status_name(int status); /* "ok", "empty", ...; "?" if out of range */

/* Parse the completion (the generated bytes after the prompt) up to its first terminator; bytes
 * after the terminator are ignored, so a rollout generated past '\n' to a fixed length is judged
 * on its first line. *value (may be NULL) gets the number formed by the leading digits read
 * (0 if none; meaningless for TOO_LONG), which diagnostics can compare with the answer even when
 * the form is wrong. completion may be NULL when n is 0. */
data_task_parse_status data_task_parse_answer(const uint8_t *completion, size_t n, uint64_t *value);
/* 1.0 if completion parses as DATA_TASK_PARSE_OK with value p->result — exactly the answer digits
 * then '\n', no spaces, signs or leading zeros — else 0.0. */
double data_task_reward(const data_task_problem *p, const uint8_t *completion, size_t n);

/* ---- batches ---- */

/* Every batch function redraws a problem that is in held_out[0..n_held_out) (NULL, 0 for none),
 * and fails (message) if 1000 draws in a row are held out: the held-out set then covers nearly
 * the whole problem space of cfg. That failure comes after drawing began, so rng has advanced and
 * the outputs are partly written; the other failures happen before anything is touched. */

/* SFT batch of B rows. Row b holds one problem's sample s = prompt + answer + "\n" of length L:
 *   x[b,t] = s[t] for t < L, DATA_TASK_PAD for L <= t < T;
 *   y[b,t] = s[t+1] when prompt_len <= t+1 < L (the answer digits and the terminator), else -1
 * (prompt positions, the terminator's own position and padding; the trainer's cross-entropy
 * ignores targets < 0). So the position of '=' predicts the first answer digit and the last digit
 * predicts '\n'. Fails (x, y, rng untouched) when cfg is invalid, B or T is 0, or
 * T < data_task_max_len(cfg) - 1 (the message says what T is needed). x, y are (B,T). */
int data_task_sft_batch(const data_task_cfg *cfg, data_rng *rng, size_t B, size_t T,
                        const data_task_problem *held_out, size_t n_held_out, int32_t *x,
                        int32_t *y, char *err, size_t errlen);

/* The rows data_task_sft_batch would write for the problems p[0..n) (the held-out evaluation set,
 * say): x, y are (n,T), T >= data_task_max_len - 1 of the problems' config (not checked here). */
void data_task_sft_rows(const data_task_problem *p, size_t n, size_t T, int32_t *x, int32_t *y);

/* n prompts for GRPO rollouts into problems[0..n) (the answers come with them for the reward).
 * Fails (rng untouched) when cfg is invalid; see above for held_out. */
int data_task_prompts(const data_task_cfg *cfg, data_rng *rng, size_t n,
                      const data_task_problem *held_out, size_t n_held_out,
                      data_task_problem *problems, char *err, size_t errlen);

/* ==== end of arithmetic tasks ================================================================= */

#endif
