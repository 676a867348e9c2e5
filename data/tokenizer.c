/* tokenizer.c — the byte tokenizer: token = byte value, vocabulary 256.
 *
 * Bytes rather than a learned BPE: no vocabulary file to ship or version, every input is
 * representable, and a checkpoint's embedding rows mean the same thing everywhere. */
#include "data/data.h"

void data_encode(const char *text, size_t n, int32_t *tokens) {
    /* Through unsigned char: plain char is signed on x86, and byte 0xE2 must be token 226. */
    for (size_t i = 0; i < n; i++)
        tokens[i] = (int32_t)(unsigned char)text[i];
}

size_t data_decode(const int32_t *tokens, size_t n, char *out) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t t = tokens[i];
        if (t < 0 || t >= DATA_VOCAB_SIZE) {
            out[i] = '?';
            bad++;
        } else {
            out[i] = (char)(unsigned char)t;
        }
    }
    return bad;
}
