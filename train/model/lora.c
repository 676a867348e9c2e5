/* lora.c — QLoRA's frozen base in the GPT: packing each base weight, the base's fingerprint and
 * size, and the merged float weight W + s·B·A that qat-merge writes. */
#include "train/model/gpt.h"

#include "train/model/packed.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int qt_lora_set_base(qt_model *m, qt_lora_slot *s, const float *w, char *err, size_t errlen) {
    qt_packed *p = s->base ? s->base : calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    qt_packed_free(p);
    char why[256];
    if (qt_packed_init(p, m->lora_base, m->lora_double_quant, w, s->rows, s->cols, why,
                       sizeof why) != 0) {
        snprintf(err, errlen, "%s: %s", s->name, why);
        free(p);
        s->base = NULL;
        s->frozen.ctx = NULL;
        return -1;
    }
    s->base = p;
    s->frozen.ctx = p;
    return 0;
}

qt_lora_slot *qt_lora_find(qt_model *m, const char *name) {
    for (size_t i = 0; i < m->n_slots; i++)
        if (strcmp(m->slots[i].name, name) == 0)
            return &m->slots[i];
    return NULL;
}

size_t qt_lora_base_count(const qt_model *m) {
    size_t n = 0;
    for (size_t i = 0; i < m->n_slots; i++)
        n += (size_t)m->slots[i].rows * (size_t)m->slots[i].cols;
    return n;
}

size_t qt_lora_base_bytes(const qt_model *m) {
    size_t n = 0;
    for (size_t i = 0; i < m->n_slots; i++)
        n += m->slots[i].base ? qt_packed_bytes(m->slots[i].base) : 0;
    return n;
}

size_t qt_lora_trainable_count(const qt_model *m) {
    size_t n = 0;
    for (size_t i = 0; i < m->n_params; i++)
        n += m->params[i].t.requires_grad ? m->params[i].t.numel : 0;
    return n;
}

uint64_t qt_lora_base_hash(const qt_model *m) {
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < m->n_slots; i++)
        if (m->slots[i].base)
            h = qt_packed_hash(m->slots[i].base, h);
    return h;
}

void qt_lora_merged_weight(const qt_model *m, const qt_lora_slot *s, float *out) {
    qt_packed_dequant_rows(s->base, 0, s->rows, out);
    if (!s->a)
        return;
    /* out [rows, cols] += scale · B [rows, r] · A [r, cols] */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)s->rows, (int)s->cols, m->lora_rank,
                (float)m->lora_scale, s->b->data, m->lora_rank, s->a->data, (int)s->cols, 1.0f, out,
                (int)s->cols);
}
