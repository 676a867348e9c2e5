/* ckpt_frame.c — the 512-byte header in front of every checkpoint: a checksum of the raw bytes,
 * verified before HDF5 parses anything.
 *
 * Why: HDF5 1.10 trusts its own metadata. Fuzzing one byte at a time showed that some damaged
 * object headers or B-tree nodes make it crash (SIGSEGV, abort in free) or loop forever inside
 * H5Fopen/H5Dread, which would take down `--resume auto` exactly when it should skip the damaged
 * file. So the writer reserves an HDF5 "user block" (512 bytes HDF5 itself skips; h5py reads such
 * files transparently) and stores there the file length and a hash of every other byte; the reader
 * checks both by streaming the file before handing it to HDF5.
 *
 * Header (little-endian): [0,8) "qat-ckpt"; [8,12) frame version 1; [12,16) user block size 512;
 * [16,24) file length; [24,32) hash of bytes [32, length) in 1 MiB pieces (docs/CHECKPOINTS.md);
 * [64, ...) one line of text for people who `head` the file; zeros up to 512. */
#define _POSIX_C_SOURCE 200809L

#include "train/io/ckpt_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PIECE ((size_t)1 << 20)
#define FRAME_SEED 0x7161746672616d31ull /* "qatframe1"-ish: arbitrary, documented */

static const unsigned char MAGIC[8] = {'q', 'a', 't', '-', 'c', 'k', 'p', 't'};
static const unsigned char HDF5_SIG[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
static const char NOTE[] = "qat checkpoint: HDF5 data from byte 512, see docs/CHECKPOINTS.md\n";

static void put_le(unsigned char *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Chained over fixed pieces so the reader can stream; piece k covers [32 + k MiB, ...). */
static uint64_t hash_pieces(const unsigned char *p, size_t n, uint64_t h) {
    for (size_t off = 0; off < n; off += PIECE)
        h = qt_ck_hash64(p + off, n - off < PIECE ? n - off : PIECE, h);
    return h;
}

void qt_ck_frame_seal(unsigned char *file, size_t n) {
    memset(file, 0, QT_CK_FRAME_SIZE);
    memcpy(file, MAGIC, sizeof MAGIC);
    put_le(file + 8, 1, 4);
    put_le(file + 12, QT_CK_FRAME_SIZE, 4);
    put_le(file + 16, n, 8);
    memcpy(file + 64, NOTE, sizeof NOTE - 1);
    put_le(file + 24, hash_pieces(file + 32, n - 32, FRAME_SEED), 8);
}

int qt_ck_frame_check(const char *path, uint64_t file_size, char *err, size_t errlen) {
    char ebuf[128];
    unsigned char head[QT_CK_FRAME_SIZE + 8];
    unsigned char *buf = NULL;
    int rc = -1;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, errlen, "%s: cannot open checkpoint: %s", path,
                 qt_ck_strerror(errno, ebuf, sizeof ebuf));
        return -1;
    }
    size_t got = fread(head, 1, sizeof head, fp);
    if (ferror(fp))
        goto io_error;
    if (got < sizeof MAGIC || memcmp(head, MAGIC, sizeof MAGIC) != 0) {
        /* No header: a plain HDF5 file (not written by qat) or not HDF5 at all; the caller's
         * checks say which. But the signature right after a user block means our header was
         * there and is damaged: HDF5 must not see that file. */
        if (got == sizeof head && memcmp(head + QT_CK_FRAME_SIZE, HDF5_SIG, 8) == 0)
            snprintf(err, errlen, "%s: checkpoint header is damaged: file is corrupted", path);
        else
            rc = 0;
        goto done;
    }
    if (got < 32) {
        snprintf(err, errlen, "%s: truncated file: %zu bytes, shorter than the header", path, got);
        goto done;
    }
    uint64_t version = get_le(head + 8, 4), ub = get_le(head + 12, 4), len = get_le(head + 16, 8);
    if (version != 1 || ub != QT_CK_FRAME_SIZE) {
        snprintf(err, errlen,
                 "%s: checkpoint header version %" PRIu64 " (user block %" PRIu64
                 " bytes), this build reads version 1 (512): newer qat, or corrupted",
                 path, version, ub);
        goto done;
    }
    if (len != file_size) {
        snprintf(err, errlen,
                 "%s: %s: the header says %" PRIu64 " bytes, the file has %" PRIu64
                 " (copied or written incompletely?)",
                 path, file_size < len ? "truncated file" : "file has extra bytes", len, file_size);
        goto done;
    }
    if (!(buf = malloc(PIECE))) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto done;
    }
    if (fseek(fp, 32, SEEK_SET) != 0)
        goto io_error;
    uint64_t h = FRAME_SEED, seen = 32;
    size_t n;
    while ((n = fread(buf, 1, PIECE, fp)) > 0) { /* full pieces until EOF on a regular file */
        h = qt_ck_hash64(buf, n, h);
        seen += n;
    }
    if (ferror(fp))
        goto io_error;
    if (seen != len || h != get_le(head + 24, 8)) {
        snprintf(err, errlen,
                 "%s: checksum mismatch: file is corrupted (its bytes changed after writing)",
                 path);
        goto done;
    }
    rc = 1;
    goto done;
io_error:
    snprintf(err, errlen, "%s: read error: %s", path, qt_ck_strerror(errno, ebuf, sizeof ebuf));
done:
    free(buf);
    fclose(fp);
    return rc;
}
