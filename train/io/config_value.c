/* config_value.c — one configuration value at a time: strict parsing (whole text, no silent
 * truncation, no NaN/Inf, no wrap-around), range checks, storing into qt_config, canonical
 * formatting, and finding keys with a "did you mean" for typos. Files and --set both end here, so
 * they cannot disagree on what is valid. */
#include "train/io/config_keys.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char lower(char ch) { return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch; }

static bool eq_nocase(const char *a, const char *b) {
    for (; *a && *b; a++, b++)
        if (lower(*a) != lower(*b))
            return false;
    return *a == *b;
}

/* ---- numbers ------------------------------------------------------------------------------- */

/* strtoll/strtoull/strtod skip leading spaces and accept a partial parse; we accept neither.
 * Returns 0 ok, -1 not an integer, 1 does not fit. */
static int parse_i64(const char *s, int64_t *out) {
    const char *d = s[0] == '-' ? s + 1 : s;
    if (*d < '0' || *d > '9')
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0')
        return -1;
    if (errno == ERANGE)
        return 1;
    *out = (int64_t)v;
    return 0;
}

static int parse_u64(const char *s, uint64_t *out) {
    if (s[0] < '0' || s[0] > '9') /* also refuses "-1", which strtoull would wrap */
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0')
        return -1;
    if (errno == ERANGE)
        return 1;
    *out = (uint64_t)v;
    return 0;
}

/* Returns 0 ok, -1 not a number, 1 not finite (nan, inf, or overflow to inf). Underflow to a
 * subnormal or zero is accepted: that is the value the text denotes, and the range check judges
 * it (it must be, or %.17g-written subnormals would not read back). */
static int parse_double(const char *s, double *out) {
    if (s[0] == '\0' || s[0] == ' ' || s[0] == '\t')
        return -1;
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end != '\0')
        return -1;
    if (!isfinite(v))
        return 1;
    *out = v;
    return 0;
}

static bool double_in_range(const qt_key *k, double v) {
    bool lo = (k->flags & QT_KEY_MIN_OPEN) ? v > k->dmin : v >= k->dmin;
    bool hi = isinf(k->dmax) || ((k->flags & QT_KEY_MAX_OPEN) ? v < k->dmax : v <= k->dmax);
    return lo && hi;
}

void qt_cfg_format_double(double x, char *buf, size_t len) {
    int prec = 1;
    for (; prec < 17; prec++) {
        snprintf(buf, len, "%.*g", prec, x);
        if (strtod(buf, NULL) == x)
            break;
    }
    if (prec == 17) {
        snprintf(buf, len, "%.17g", x); /* always exact for a finite double */
        return;
    }
    /* %g switches to an exponent once it exceeds the precision: "1e+01" for 10. Write such
     * numbers out in full when the longer text still reads back exactly. */
    const char *e = strchr(buf, 'e');
    int exp10 = e ? atoi(e + 1) : -1;
    if (exp10 >= prec && exp10 < 17) {
        char full[32];
        snprintf(full, sizeof full, "%.*g", exp10 + 1, x);
        if (strtod(full, NULL) == x)
            snprintf(buf, len, "%s", full);
    }
}

/* ---- texts --------------------------------------------------------------------------------- */

const char *qt_cfg_type_name(qt_key_type t) {
    switch (t) {
    case QT_KT_INT:
    case QT_KT_I64:
        return "int";
    case QT_KT_U64:
        return "uint64";
    case QT_KT_DOUBLE:
        return "double";
    case QT_KT_BOOL:
        return "bool";
    case QT_KT_PATH:
        return "path";
    case QT_KT_LIST:
        return "list";
    case QT_KT_ENUM:
        return "enum";
    }
    return "?";
}

/* Append to buf at *n without overflowing; keeps buf terminated. */
static void append(char *buf, size_t len, size_t *n, const char *fmt, ...) {
    if (*n >= len)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf + *n, len - *n, fmt, ap);
    va_end(ap);
    if (w > 0)
        *n = *n + (size_t)w < len ? *n + (size_t)w : len;
}

static void choices_text(const qt_key *k, const char *sep, char *buf, size_t len) {
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; k->choices[i]; i++)
        append(buf, len, &n, "%s%s", i ? sep : "", k->choices[i]);
}

void qt_cfg_range_text(int idx, char *buf, size_t len) {
    const qt_key *k = &qt_cfg_keys[idx];
    char lo[32], hi[32];
    size_t n = 0;
    if (len == 0)
        return;
    buf[0] = '\0';
    switch (k->type) {
    case QT_KT_INT:
    case QT_KT_I64:
        append(buf, len, &n, "%" PRId64 "..%" PRId64, k->imin, k->imax);
        break;
    case QT_KT_U64:
        append(buf, len, &n, "0..2^64-1");
        break;
    case QT_KT_DOUBLE:
        qt_cfg_format_double(k->dmin, lo, sizeof lo);
        if (isinf(k->dmax)) {
            append(buf, len, &n, "%s %s %s", k->name,
                   (k->flags & QT_KEY_MIN_OPEN) ? ">" : ">=", lo);
            break;
        }
        qt_cfg_format_double(k->dmax, hi, sizeof hi);
        append(buf, len, &n, "%s %s %s %s %s", lo,
               (k->flags & QT_KEY_MIN_OPEN) ? "<" : "<=", k->name,
               (k->flags & QT_KEY_MAX_OPEN) ? "<" : "<=", hi);
        break;
    case QT_KT_BOOL:
        append(buf, len, &n, "true|false");
        break;
    case QT_KT_PATH: /* empty where the default is: "none" */
        append(buf, len, &n, "%d..%d bytes", k->def[0] ? 1 : 0, QT_CONFIG_STRING_MAX);
        break;
    case QT_KT_LIST:
        append(buf, len, &n, "comma-separated");
        break;
    case QT_KT_ENUM:
        choices_text(k, "|", buf, len);
        break;
    }
}

/* ---- store and format ---------------------------------------------------------------------- */

static const char *const bool_true[] = {"true", "1", "yes", "on", NULL};
static const char *const bool_false[] = {"false", "0", "no", "off", NULL};

static int word_index(const char *const *words, const char *s, bool nocase) {
    for (int i = 0; words[i]; i++)
        if (nocase ? eq_nocase(words[i], s) : strcmp(words[i], s) == 0)
            return i;
    return -1;
}

/* Why `value` is refused for k, or NULL after storing it into field. */
static const char *store(const qt_key *k, int idx, const char *value, char *field, char *why,
                         size_t whylen) {
    char range[160];
    qt_cfg_range_text(idx, range, sizeof range);
    /* A path whose default is empty takes "" for "none" (run.init_from); nothing else does. */
    bool may_be_empty = k->type == QT_KT_PATH && k->def[0] == '\0';
    if (value[0] == '\0' && may_be_empty) {
        memset(field, 0, QT_PATH_MAX);
        return NULL;
    }
    if (value[0] == '\0') {
        snprintf(why, whylen, "empty value (expected %s %s)", qt_cfg_type_name(k->type), range);
        return why;
    }
    switch (k->type) {
    case QT_KT_INT:
    case QT_KT_I64: {
        int64_t v = 0;
        int r = parse_i64(value, &v);
        if (r < 0)
            return "not an integer";
        if (r > 0 || v < k->imin || v > k->imax)
            break;
        if (k->type == QT_KT_INT) {
            int iv = (int)v; /* in range, and every range fits an int (tested) */
            memcpy(field, &iv, sizeof iv);
        } else {
            memcpy(field, &v, sizeof v);
        }
        return NULL;
    }
    case QT_KT_U64: {
        uint64_t v = 0;
        int r = parse_u64(value, &v);
        if (r < 0)
            return "not an unsigned integer";
        if (r > 0)
            break;
        memcpy(field, &v, sizeof v);
        return NULL;
    }
    case QT_KT_DOUBLE: {
        double v = 0;
        int r = parse_double(value, &v);
        if (r < 0)
            return "not a number";
        if (r > 0)
            return "not a finite number";
        if (!double_in_range(k, v))
            break;
        memcpy(field, &v, sizeof v);
        return NULL;
    }
    case QT_KT_BOOL: {
        bool v = word_index(bool_true, value, true) >= 0;
        if (!v && word_index(bool_false, value, true) < 0)
            return "expected true or false (also 1/0, yes/no, on/off)";
        memcpy(field, &v, sizeof v);
        return NULL;
    }
    case QT_KT_PATH:
    case QT_KT_LIST: {
        size_t len = strlen(value);
        if (len > QT_CONFIG_STRING_MAX) {
            snprintf(why, whylen, "longer than %d bytes", QT_CONFIG_STRING_MAX);
            return why;
        }
        /* Both would break the round trip through config.ini: inih reads " ;" as a comment and a
         * control character (newline) would end or corrupt the line. */
        for (size_t i = 0; i < len; i++) {
            unsigned char ch = (unsigned char)value[i];
            if (ch < 0x20 || ch == 0x7f)
                return "contains a control character";
            if (ch == ';')
                return "contains ';', which INI files read as a comment";
        }
        memset(field, 0, QT_PATH_MAX); /* no stale bytes: equal configs compare equal bytewise */
        memcpy(field, value, len);
        return NULL;
    }
    case QT_KT_ENUM: {
        int v = word_index(k->choices, value, false);
        if (v < 0) {
            char list[160];
            choices_text(k, ", ", list, sizeof list);
            snprintf(why, whylen, "expected one of %s", list);
            return why;
        }
        memcpy(field, &v, sizeof v);
        return NULL;
    }
    }
    snprintf(why, whylen, "out of range (expected %s)", range);
    return why;
}

int qt_cfg_assign(qt_config *c, int idx, const char *value, const char *where, char *err,
                  size_t errlen) {
    const qt_key *k = &qt_cfg_keys[idx];
    char why[256];
    const char *r = store(k, idx, value, (char *)c + k->offset, why, sizeof why);
    if (!r)
        return 0;
    /* Quote at most 80 bytes of the value: a runaway --set must not drown the message. */
    size_t vlen = strlen(value);
    snprintf(err, errlen, "%s: [%s] %s = '%.*s%s': %s", where, k->section, k->name,
             (int)(vlen > 80 ? 80 : vlen), value, vlen > 80 ? "..." : "", r);
    return -1;
}

void qt_cfg_format(const qt_config *c, int idx, char *buf, size_t len) {
    const qt_key *k = &qt_cfg_keys[idx];
    const char *field = (const char *)c + k->offset;
    switch (k->type) {
    case QT_KT_INT: {
        int v;
        memcpy(&v, field, sizeof v);
        snprintf(buf, len, "%d", v);
        return;
    }
    case QT_KT_I64: {
        int64_t v;
        memcpy(&v, field, sizeof v);
        snprintf(buf, len, "%" PRId64, v);
        return;
    }
    case QT_KT_U64: {
        uint64_t v;
        memcpy(&v, field, sizeof v);
        snprintf(buf, len, "%" PRIu64, v);
        return;
    }
    case QT_KT_DOUBLE: {
        double v;
        memcpy(&v, field, sizeof v);
        qt_cfg_format_double(v, buf, len);
        return;
    }
    case QT_KT_BOOL: {
        bool v;
        memcpy(&v, field, sizeof v);
        snprintf(buf, len, "%s", v ? "true" : "false");
        return;
    }
    case QT_KT_PATH:
    case QT_KT_LIST:
        snprintf(buf, len, "%.*s", QT_PATH_MAX - 1, field);
        return;
    case QT_KT_ENUM: {
        int v, n = 0;
        memcpy(&v, field, sizeof v);
        while (k->choices[n])
            n++;
        snprintf(buf, len, "%s", v >= 0 && v < n ? k->choices[v] : "?");
        return;
    }
    }
}

/* ---- finding keys -------------------------------------------------------------------------- */

#define QT_DIST_MAX 64

/* Case-insensitive Levenshtein distance; SIZE_MAX when a string is too long to bother. */
static size_t edit_distance(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    size_t prev[QT_DIST_MAX + 1], cur[QT_DIST_MAX + 1];
    if (na > QT_DIST_MAX || nb > QT_DIST_MAX)
        return SIZE_MAX;
    for (size_t j = 0; j <= nb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= na; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t sub = prev[j - 1] + (lower(a[i - 1]) != lower(b[j - 1]));
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (nb + 1) * sizeof prev[0]);
    }
    return prev[nb];
}

/* The section holding a key of this exact name, or NULL. */
static const char *home_section(const char *key) {
    for (size_t i = 0; i < qt_cfg_nkeys; i++)
        if (strcmp(qt_cfg_keys[i].name, key) == 0)
            return qt_cfg_keys[i].section;
    return NULL;
}

/* The closest key of the section when it is close enough to be a typo (about one edit per four
 * characters), else NULL. */
static const char *closest_key(const char *section, const char *key) {
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; i < qt_cfg_nkeys; i++) {
        const qt_key *k = &qt_cfg_keys[i];
        if (strcmp(k->section, section) != 0)
            continue;
        size_t d = edit_distance(key, k->name);
        if (d <= 1 + strlen(k->name) / 4 && d < best_d) {
            best = k->name;
            best_d = d;
        }
    }
    return best;
}

int qt_cfg_lookup(const char *where, const char *section, const char *key, char *err,
                  size_t errlen) {
    int idx = qt_cfg_find(section, key);
    if (idx >= 0)
        return idx;
    if (key[0] == '\0') {
        snprintf(err, errlen, "%s: missing key name before '='", where);
        return -1;
    }
    char list[512];
    const char *home = home_section(key);
    if (section[0] == '\0') {
        qt_cfg_known_sections(list, sizeof list);
        if (home)
            snprintf(err, errlen, "%s: key '%s' outside any section (it belongs in [%s])", where,
                     key, home);
        else
            snprintf(err, errlen, "%s: key '%s' outside any section (sections: %s)", where, key,
                     list);
        return -1;
    }
    if (!qt_cfg_section_known(section)) {
        qt_cfg_known_sections(list, sizeof list);
        snprintf(err, errlen, "%s: unknown section [%s] (known: %s)", where, section, list);
        return -1;
    }
    if (home) {
        snprintf(err, errlen, "%s: unknown key '%s' in [%s] (it belongs in [%s])", where, key,
                 section, home);
        return -1;
    }
    const char *near = closest_key(section, key);
    if (near) {
        snprintf(err, errlen, "%s: unknown key '%s' in [%s] (did you mean '%s'?)", where, key,
                 section, near);
        return -1;
    }
    size_t n = 0;
    list[0] = '\0';
    for (size_t i = 0; i < qt_cfg_nkeys; i++)
        if (strcmp(qt_cfg_keys[i].section, section) == 0)
            append(list, sizeof list, &n, "%s%s", n ? ", " : "", qt_cfg_keys[i].name);
    snprintf(err, errlen, "%s: unknown key '%s' in [%s] (known: %s)", where, key, section, list);
    return -1;
}
