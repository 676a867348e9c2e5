/* config.c — lifecycle of a qt_config (defaults, copy, free, origins), reading INI files and
 * strings through inih, and --set overrides.
 *
 * inih r55 as Debian builds it gives the handler no line number, splits lines over 200 bytes and
 * (INI_ALLOW_MULTILINE) appends an indented line to the previous key's value. So we feed it lines
 * ourselves (ini_parse_stream with our reader) and the reader
 *   - counts lines, so the handler knows which line it is called for;
 *   - rejects a line longer than QT_CONFIG_LINE_MAX bytes, and NUL bytes (inih would cut there);
 *   - strips leading whitespace, so an indented "key = value" is an ordinary line and an indented
 *     line without '=' is a syntax error, never a silent continuation;
 *   - checks "[section]" lines itself (inih reports nothing for a section without keys, and
 *     ignores text after ']').
 * Parsing goes into a copy that replaces the caller's config only when the whole input is valid.
 */
#include "train/io/config_keys.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef char qt_origin[QT_PATH_MAX + 16];

/* ---- lifecycle ----------------------------------------------------------------------------- */

int qt_config_defaults(qt_config *c) {
    /* Zeroed first so that padding and string tails are too: equal configs are equal bytewise. */
    memset(c, 0, sizeof *c);
    c->origin = calloc(qt_cfg_nkeys, sizeof *c->origin);
    if (!c->origin)
        return -1;
    for (size_t i = 0; i < qt_cfg_nkeys; i++) {
        char err[512];
        /* A default the parser refuses is a bug in the table (the tests parse every one). */
        if (qt_cfg_assign(c, (int)i, qt_cfg_keys[i].def, "default", err, sizeof err) != 0) {
            qt_config_free(c);
            return -1;
        }
        snprintf(c->origin[i], sizeof c->origin[i], "default");
    }
    return 0;
}

void qt_config_free(qt_config *c) {
    if (!c)
        return;
    free(c->origin);
    c->origin = NULL;
}

int qt_config_copy(qt_config *dst, const qt_config *src) {
    qt_origin *o = calloc(qt_cfg_nkeys, sizeof *o);
    if (!o)
        return -1;
    if (src->origin)
        memcpy(o, src->origin, qt_cfg_nkeys * sizeof *o);
    memcpy(dst, src, sizeof *dst);
    dst->origin = o;
    return 0;
}

/* Values and origins of src into c, keeping c's own origin array. */
static void commit(qt_config *c, const qt_config *src) {
    qt_origin *keep = c->origin;
    memcpy(c, src, sizeof *c);
    c->origin = keep;
    memcpy(keep, src->origin, qt_cfg_nkeys * sizeof *keep);
}

const char *qt_config_origin(const qt_config *c, const char *section, const char *key) {
    int idx = qt_cfg_find(section, key);
    return idx >= 0 && c->origin ? c->origin[idx] : NULL;
}

static int need_origin(const qt_config *c, char *err, size_t errlen) {
    if (c->origin)
        return 0;
    snprintf(err, errlen, "config not initialised (call qt_config_defaults first)");
    return -1;
}

/* ---- INI input ----------------------------------------------------------------------------- */

typedef struct qt_cfg_parse {
    const char *name; /* file name (or checkpoint name) for messages and origins */
    const char *text;
    size_t len, pos;
    int line;        /* number of the line last handed to inih */
    qt_config *cfg;  /* the copy being filled */
    int *first_line; /* per key: line where this input set it, 0 if not yet */
    int err_line;    /* line of our first error, 0 if none */
    char *err;
    size_t errlen;
} qt_cfg_parse;

/* Record "NAME:LINE: what" as the parse error; returns -1. */
static int fail_at(qt_cfg_parse *p, const char *fmt, ...) {
    char what[QT_CONFIG_LINE_MAX + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(p->err, p->errlen, "%s:%d: %s", p->name, p->line, what);
    p->err_line = p->line;
    return -1;
}

static bool is_blank(char ch) { return ch == ' ' || ch == '\t' || ch == '\v' || ch == '\f'; }

/* A "[section]" line (leading whitespace already gone): known name, nothing after ']' but spaces
 * or a ';' comment. */
static int check_section_line(qt_cfg_parse *p, char *s) {
    char *close = strchr(s, ']');
    if (!close)
        return fail_at(p, "section header '%s' has no closing ']'", s);
    const char *after = close + 1;
    while (is_blank(*after))
        after++;
    if (*after != '\0' && *after != ';')
        return fail_at(p, "unexpected text after ']': '%s'", after);
    *close = '\0';
    if (qt_cfg_section_known(s + 1)) {
        *close = ']';
        return 0;
    }
    char known[256];
    qt_cfg_known_sections(known, sizeof known);
    return fail_at(p, "unknown section [%.60s] (known: %s)", s + 1, known);
}

/* inih's fgets-like reader: one physical line per call, returned without its newline. Returning
 * NULL ends the parse (end of input, or an error recorded in p). */
static char *reader(char *str, int num, void *stream) {
    qt_cfg_parse *p = stream;
    if (p->err_line || p->pos >= p->len)
        return NULL;
    const char *s = p->text + p->pos;
    const char *nl = memchr(s, '\n', p->len - p->pos);
    size_t n = nl ? (size_t)(nl - s) : p->len - p->pos;
    p->pos += n + (nl != NULL);
    p->line++;
    if (n > 0 && s[n - 1] == '\r')
        n--;
    if (memchr(s, '\0', n)) {
        fail_at(p, "NUL byte in line");
        return NULL;
    }
    if (n > QT_CONFIG_LINE_MAX || n + 1 > (size_t)num) {
        fail_at(p, "line longer than %d bytes", QT_CONFIG_LINE_MAX);
        return NULL;
    }
    size_t skip = 0;
    if (p->line == 1 && n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) /* UTF-8 BOM */
        skip = 3;
    while (skip < n && is_blank(s[skip]))
        skip++;
    s += skip;
    n -= skip;
    memcpy(str, s, n);
    str[n] = '\0';
    if (str[0] == '[' && check_section_line(p, str) != 0)
        return NULL;
    return str;
}

static int handler(void *user, const char *section, const char *name, const char *value) {
    qt_cfg_parse *p = user;
    char where[QT_PATH_MAX + 16];
    snprintf(where, sizeof where, "%s:%d", p->name, p->line);
    int idx = qt_cfg_lookup(where, section, name, p->err, p->errlen);
    if (idx >= 0 && p->first_line[idx]) {
        snprintf(p->err, p->errlen, "%s: [%s] %s set twice (first at line %d)", where, section,
                 name, p->first_line[idx]);
        idx = -1;
    }
    if (idx < 0 || qt_cfg_assign(p->cfg, idx, value, where, p->err, p->errlen) != 0) {
        p->err_line = p->line;
        return 0;
    }
    p->first_line[idx] = p->line;
    snprintf(p->cfg->origin[idx], sizeof p->cfg->origin[idx], "%s", where);
    return 1;
}

/* Text of line `line` (1-based), leading whitespace dropped, for a syntax-error message. */
static void line_text(const char *text, size_t len, int line, char *out, size_t outlen) {
    size_t pos = 0;
    for (int l = 1; l < line && pos < len; l++) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        pos = nl ? (size_t)(nl - text) + 1 : len;
    }
    while (pos < len && is_blank(text[pos]))
        pos++;
    size_t n = 0;
    while (pos + n < len && text[pos + n] != '\n' && text[pos + n] != '\r')
        n++;
    snprintf(out, outlen, "%.*s", (int)(n > 80 ? 80 : n), text + pos);
}

static int parse_text(qt_config *c, const char *text, size_t len, const char *name, char *err,
                      size_t errlen) {
    if (need_origin(c, err, errlen) != 0)
        return -1;
    qt_config tmp;
    int *first = calloc(qt_cfg_nkeys, sizeof *first);
    if (!first || qt_config_copy(&tmp, c) != 0) {
        free(first);
        snprintf(err, errlen, "%s: out of memory", name);
        return -1;
    }
    qt_cfg_parse p = {.name = name,
                      .text = text,
                      .len = len,
                      .cfg = &tmp,
                      .first_line = first,
                      .err = err,
                      .errlen = errlen};
    int r = ini_parse_stream(reader, &p, handler, &p);
    /* inih reports lines it could not read as "key = value" (no '=') by number only, and keeps
     * going; whichever error comes first in the file is the one to report. */
    if (r > 0 && (p.err_line == 0 || r < p.err_line)) {
        char got[96];
        line_text(text, len, r, got, sizeof got);
        snprintf(err, errlen, "%s:%d: expected '[section]' or 'key = value', got '%s'", name, r,
                 got);
        p.err_line = r;
    } else if (r < 0 && p.err_line == 0) {
        snprintf(err, errlen, "%s: inih failed (%d)", name, r);
        p.err_line = -1;
    }
    if (p.err_line == 0)
        commit(c, &tmp);
    qt_config_free(&tmp);
    free(first);
    return p.err_line == 0 ? 0 : -1;
}

int qt_config_load_string(qt_config *c, const char *text, const char *name, char *err,
                          size_t errlen) {
    return parse_text(c, text, strlen(text), name, err, errlen);
}

int qt_config_load(qt_config *c, const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open config '%s': %s", path, strerror(errno));
        return -1;
    }
    /* One byte more than the limit tells "too big" from "exactly at the limit". */
    char *buf = malloc(QT_CONFIG_FILE_MAX + 1);
    if (!buf) {
        fclose(f);
        snprintf(err, errlen, "cannot read config '%s': out of memory", path);
        return -1;
    }
    size_t n = fread(buf, 1, QT_CONFIG_FILE_MAX + 1, f);
    int rc = -1;
    if (ferror(f))
        snprintf(err, errlen, "cannot read config '%s': %s", path, strerror(errno));
    else if (n > QT_CONFIG_FILE_MAX)
        snprintf(err, errlen, "config '%s' is larger than %d bytes", path, QT_CONFIG_FILE_MAX);
    else
        rc = parse_text(c, buf, n, path, err, errlen);
    free(buf);
    fclose(f);
    return rc;
}

/* ---- --set --------------------------------------------------------------------------------- */

/* s with surrounding blanks removed, in place. */
static char *trim(char *s) {
    while (is_blank(*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && is_blank(s[n - 1]))
        s[--n] = '\0';
    return s;
}

static int set_syntax_error(const char *a, const char *key, char *err, size_t errlen) {
    const char *home = NULL;
    for (size_t i = 0; key && i < qt_cfg_nkeys && !home; i++)
        if (strcmp(qt_cfg_keys[i].name, key) == 0)
            home = qt_cfg_keys[i].section;
    if (home)
        snprintf(err, errlen,
                 "--set '%.200s': expected section.key=value (did you mean %s.%s=...?)", a, home,
                 key);
    else
        snprintf(err, errlen, "--set '%.200s': expected section.key=value (e.g. optim.lr=3e-4)", a);
    return -1;
}

int qt_config_set(qt_config *c, const char *assignment, char *err, size_t errlen) {
    if (need_origin(c, err, errlen) != 0)
        return -1;
    const char *a = assignment ? assignment : "";
    if (!strchr(a, '='))
        return set_syntax_error(a, NULL, err, errlen);
    char *buf = malloc(strlen(a) + 1);
    if (!buf) {
        snprintf(err, errlen, "--set: out of memory");
        return -1;
    }
    strcpy(buf, a);
    char *eq = strchr(buf, '=');
    *eq = '\0';
    char *lhs = trim(buf), *value = trim(eq + 1), *dot = strchr(lhs, '.');
    int rc = -1;
    if (!dot) {
        set_syntax_error(a, lhs, err, errlen);
    } else {
        *dot = '\0';
        int idx = qt_cfg_lookup("--set", lhs, dot + 1, err, errlen);
        if (idx >= 0 && qt_cfg_assign(c, idx, value, "--set", err, errlen) == 0) {
            snprintf(c->origin[idx], sizeof c->origin[idx], "--set");
            rc = 0;
        }
    }
    free(buf);
    return rc;
}
