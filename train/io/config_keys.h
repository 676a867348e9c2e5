/* config_keys.h — private to train/io/config*.c: the key table and the per-value machinery
 * (parse, range-check, store, format) that the loader, --set, the INI writer and the help share. */
#ifndef QAT_TRAIN_IO_CONFIG_KEYS_H
#define QAT_TRAIN_IO_CONFIG_KEYS_H

#include "train/io/config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    QT_KT_INT,    /* int field, range imin..imax */
    QT_KT_I64,    /* int64_t field, range imin..imax */
    QT_KT_U64,    /* uint64_t field, full range */
    QT_KT_DOUBLE, /* double field, range dmin..dmax (ends open per flags; dmax may be INFINITY) */
    QT_KT_BOOL,   /* bool field */
    QT_KT_PATH,   /* char[QT_PATH_MAX] field, 1..QT_CONFIG_STRING_MAX bytes */
    QT_KT_ENUM,   /* enum field (stored as int), value = index into choices */
    QT_KT_LIST    /* char[QT_PATH_MAX] field holding a comma-separated list, checked by the
                     cross-key validation (e.g. [quant] formats) */
} qt_key_type;

#define QT_KEY_MIN_OPEN 1u /* dmin itself is out of range */
#define QT_KEY_MAX_OPEN 2u /* dmax itself is out of range */
/* A [model] key added after checkpoints were first written: it enters the model fingerprint only
 * when it differs from its default, so that every earlier checkpoint keeps its fingerprint. Its
 * default must be spelled the way qt_cfg_format prints the value (e.g. an enum name). */
#define QT_KEY_HASH_IF_SET 4u

typedef struct qt_key {
    const char *section, *name;
    qt_key_type type;
    size_t offset;              /* of the field in qt_config */
    const char *def;            /* default, as INI text: parsed by the same code as a file value */
    int64_t imin, imax;         /* QT_KT_INT, QT_KT_I64 */
    double dmin, dmax;          /* QT_KT_DOUBLE */
    unsigned flags;             /* QT_KEY_MIN_OPEN | QT_KEY_MAX_OPEN | QT_KEY_HASH_IF_SET */
    const char *const *choices; /* QT_KT_ENUM: NULL-terminated, in enum order */
    const char *desc;           /* one line for --help-config */
} qt_key;

/* The table (config_keys.c). Keys of one section are contiguous; sections appear in table order. */
extern const qt_key qt_cfg_keys[];
extern const size_t qt_cfg_nkeys;

/* Index of section.key in the table, or -1. */
int qt_cfg_find(const char *section, const char *key);
/* True when some key lives in this section. */
bool qt_cfg_section_known(const char *section);
/* "run, model, data, optim" into buf. */
void qt_cfg_known_sections(char *buf, size_t len);

/* Index of section.key, or -1 with "WHERE: unknown section [x] (known: ...)", "WHERE: unknown key
 * 'lrr' in [optim] (did you mean 'lr'?)" or "WHERE: key 'lr' outside any section ..." in err. */
int qt_cfg_lookup(const char *where, const char *section, const char *key, char *err,
                  size_t errlen);
/* Parse `value` strictly for key idx, check its range and store it in c; the origin is not
 * touched. On error nothing is stored and err holds "WHERE: [sec] key = 'value': reason". */
int qt_cfg_assign(qt_config *c, int idx, const char *value, const char *where, char *err,
                  size_t errlen);
/* The canonical text of key idx's value in c (what qt_config_to_ini writes). */
void qt_cfg_format(const qt_config *c, int idx, char *buf, size_t len);
/* The accepted values of key idx: "1..256", "0 < lr <= 10", "cosine|linear|constant", ... */
void qt_cfg_range_text(int idx, char *buf, size_t len);
/* Short type name: "int", "uint64", "double", "bool", "path", "enum". */
const char *qt_cfg_type_name(qt_key_type t);
/* Shortest "%.Ng" text that reads back to exactly x. */
void qt_cfg_format_double(double x, char *buf, size_t len);

#endif
