/* init.h — weights from another checkpoint: the QLoRA base (used by qat-train, qat-eval and
 * qat-merge; [run] init_from is qat-train's own, see session.h). */
#ifndef QAT_TRAIN_RUN_INIT_H
#define QAT_TRAIN_RUN_INIT_H

#include "train/io/config.h"
#include "train/model/gpt.h"

#include <stddef.h>

/* The checkpoint a weights key (run.init_from, lora.init_from) names: path itself, or, when path
 * is a directory (a run's out_dir), the newest valid checkpoint in path/ckpt. Returns 0 with the
 * file in out, or -1 with a message (a directory without a valid checkpoint). */
int qt_weights_path(const char *path, char *out, size_t outlen, char *err, size_t errlen);

/* Fill the frozen part of QLoRA model m from the checkpoint at path (or the newest in the run
 * directory path, see qt_weights_path) (a training checkpoint's
 * float weights, or an anchor's / PTQ file's dequantized ones): every base weight packed in m's
 * base format, every float parameter that is not an adapter copied. The stored [model] must equal
 * cfg's. Returns QT_EXIT_OK, or QT_EXIT_CKPT with a message naming path (and the differing keys
 * or the missing tensor), QT_EXIT_INTERNAL when memory runs out. */
int qt_lora_load_base(qt_model *m, const qt_config *cfg, const char *path, char *err,
                      size_t errlen);

#endif
