/* config_out.c — everything that turns a qt_config back into text: the resolved INI (config.ini,
 * checkpoints), the architecture fingerprint and diff, and the --help-config table. All of it is
 * generated from the key table, so a new key shows up everywhere at once. */
#include "train/io/config_keys.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest formatted value: a path, or a number / enum name (far shorter). */
#define QT_VALUE_MAX (QT_PATH_MAX + 64)

typedef struct qt_textbuf {
    char *s;
    size_t n, cap;
} qt_textbuf;

/* Appends while there is room; callers size cap from the table so that there always is. */
static void put(qt_textbuf *b, const char *fmt, ...) {
    if (b->n >= b->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    if (w > 0)
        b->n = b->n + (size_t)w < b->cap ? b->n + (size_t)w : b->cap;
}

/* "[section]\nkey = value\n..." for the keys of one section. */
static void put_section(qt_textbuf *b, const qt_config *c, const char *section) {
    char v[QT_VALUE_MAX];
    put(b, "[%s]\n", section);
    for (size_t i = 0; i < qt_cfg_nkeys; i++) {
        if (strcmp(qt_cfg_keys[i].section, section) != 0)
            continue;
        qt_cfg_format(c, (int)i, v, sizeof v);
        put(b, "%s = %s\n", qt_cfg_keys[i].name, v);
    }
}

static bool section_starts_at(size_t i) {
    return i == 0 || strcmp(qt_cfg_keys[i].section, qt_cfg_keys[i - 1].section) != 0;
}

static size_t text_bound(void) { return qt_cfg_nkeys * (QT_VALUE_MAX + 80) + 1; }

char *qt_config_to_ini(const qt_config *c) {
    qt_textbuf b = {malloc(text_bound()), 0, text_bound()};
    if (!b.s)
        return NULL;
    b.s[0] = '\0';
    for (size_t i = 0; i < qt_cfg_nkeys; i++) {
        if (!section_starts_at(i))
            continue;
        if (i > 0)
            put(&b, "\n");
        put_section(&b, c, qt_cfg_keys[i].section);
    }
    return b.s;
}

static void fnv1a(uint64_t *h, const char *s) {
    for (; *s; s++) {
        *h ^= (unsigned char)*s;
        *h *= 1099511628211ull;
    }
}

/* FNV-1a over the canonical [model] text exactly as qt_config_to_ini writes it ("[model]\n",
 * then "key = value\n" per key), fed piece by piece so that it needs no buffer and cannot fail.
 * Key names are hashed too: renaming a [model] key changes every fingerprint. Keys added later
 * (QT_KEY_HASH_IF_SET) are left out while at their default, so earlier checkpoints still match. */
uint64_t qt_config_model_hash(const qt_config *c) {
    uint64_t h = 14695981039346656037ull;
    char v[QT_VALUE_MAX];
    fnv1a(&h, "[model]\n");
    for (size_t i = 0; i < qt_cfg_nkeys; i++) {
        if (strcmp(qt_cfg_keys[i].section, "model") != 0)
            continue;
        qt_cfg_format(c, (int)i, v, sizeof v);
        if ((qt_cfg_keys[i].flags & QT_KEY_HASH_IF_SET) && strcmp(v, qt_cfg_keys[i].def) == 0)
            continue;
        fnv1a(&h, qt_cfg_keys[i].name);
        fnv1a(&h, " = ");
        fnv1a(&h, v);
        fnv1a(&h, "\n");
    }
    return h;
}

int qt_config_model_diff(const qt_config *a, const qt_config *b, char *diff, size_t difflen) {
    qt_textbuf out = {diff, 0, diff ? difflen : 0};
    char va[QT_VALUE_MAX], vb[QT_VALUE_MAX];
    int n = 0;
    if (out.cap)
        diff[0] = '\0';
    for (size_t i = 0; i < qt_cfg_nkeys; i++) {
        if (strcmp(qt_cfg_keys[i].section, "model") != 0)
            continue;
        qt_cfg_format(a, (int)i, va, sizeof va);
        qt_cfg_format(b, (int)i, vb, sizeof vb);
        if (strcmp(va, vb) == 0)
            continue;
        put(&out, "%s%s: %s vs %s", n ? "; " : "", qt_cfg_keys[i].name, va, vb);
        n++;
    }
    return n;
}

void qt_config_print_help(FILE *f) {
    char name[128], type[256];
    int wname = 0, wtype = 0, wdef = 0;
    for (size_t i = 0; i < qt_cfg_nkeys; i++) {
        const qt_key *k = &qt_cfg_keys[i];
        char range[192];
        qt_cfg_range_text((int)i, range, sizeof range);
        int n1 = snprintf(name, sizeof name, "%s.%s", k->section, k->name);
        int n2 = snprintf(type, sizeof type, "%s %s", qt_cfg_type_name(k->type), range);
        int n3 = (int)strlen(k->def);
        wname = n1 > wname ? n1 : wname;
        wtype = n2 > wtype ? n2 : wtype;
        wdef = n3 > wdef ? n3 : wdef;
    }
    fprintf(f, "Configuration keys. Every key is optional (the default applies); override any\n"
               "with --set section.key=value. Booleans also accept 1/0, yes/no, on/off.\n\n");
    fprintf(f, "  %-*s  %-*s  %-*s  %s\n", wname, "section.key", wtype, "type/range", wdef,
            "default", "description");
    for (size_t i = 0; i < qt_cfg_nkeys; i++) {
        const qt_key *k = &qt_cfg_keys[i];
        char range[192];
        if (section_starts_at(i))
            fprintf(f, "\n[%s]\n", k->section);
        qt_cfg_range_text((int)i, range, sizeof range);
        snprintf(name, sizeof name, "%s.%s", k->section, k->name);
        snprintf(type, sizeof type, "%s %s", qt_cfg_type_name(k->type), range);
        fprintf(f, "  %-*s  %-*s  %-*s  %s\n", wname, name, wtype, type, wdef, k->def, k->desc);
    }
}
