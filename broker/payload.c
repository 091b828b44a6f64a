/*
 * payload.c - see payload.h.
 *
 * cJSON decides whether a payload is valid. A small recursive-descent
 * scanner (RFC 8259 grammar, no allocation) runs first: when it accepts a
 * payload that has nothing cJSON might judge differently (\u escapes, whose
 * surrogates cJSON checks, and numbers of 64 characters or more, which
 * older cJSON releases cut short), cJSON would accept it too, and building its tree is skipped: the
 * scanner is several times cheaper on the hot path. Everything else goes
 * to cJSON; when cJSON refuses, the scanner's stop position names the
 * first byte that cannot be part of a valid document (cJSON's own position
 * is only approximate).
 *
 * cJSON writes a global error position on every parse, so calls into it are
 * serialised by cjson_lock (a leaf lock; docs/threads.md). They are rare:
 * the scanner settles nearly every payload.
 */
#include "payload.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static pthread_mutex_t cjson_lock = PTHREAD_MUTEX_INITIALIZER;

#define MAX_DEPTH 1000 /* as cJSON's nesting limit */

struct scan {
    const char *p;
    size_t n, i;
    int depth;
    bool ask_cjson; /* met something cJSON handles its own way */
};

static bool is_ws(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

static void skip_ws(struct scan *s)
{
    while (s->i < s->n && is_ws(s->p[s->i]))
        s->i++;
}

static bool peek_is(const struct scan *s, char ch)
{
    return s->i < s->n && s->p[s->i] == ch;
}

static bool is_digit(const struct scan *s)
{
    return s->i < s->n && s->p[s->i] >= '0' && s->p[s->i] <= '9';
}

static bool literal(struct scan *s, const char *word)
{
    for (; *word; word++, s->i++)
        if (s->i >= s->n || s->p[s->i] != *word)
            return false;
    return true;
}

static bool hex4(struct scan *s)
{
    for (int k = 0; k < 4; k++, s->i++) {
        if (s->i >= s->n)
            return false;
        char c = s->p[s->i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return true;
}

static bool string(struct scan *s)
{
    s->i++; /* opening quote */
    while (s->i < s->n) {
        unsigned char c = (unsigned char)s->p[s->i];
        if (c == '"') {
            s->i++;
            return true;
        }
        if (c < 0x20)
            return false;
        if (c == '\\') {
            s->i++;
            if (s->i >= s->n)
                return false;
            char e = s->p[s->i];
            if (e == 'u') {
                s->ask_cjson = true;
                s->i++;
                if (!hex4(s))
                    return false;
                continue;
            }
            if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' && e != 'r' && e != 't')
                return false;
        }
        s->i++;
    }
    return false;
}

static bool number(struct scan *s)
{
    size_t start = s->i;
    if (peek_is(s, '-'))
        s->i++;
    if (peek_is(s, '0'))
        s->i++;
    else if (is_digit(s))
        while (is_digit(s))
            s->i++;
    else
        return false;
    if (peek_is(s, '.')) {
        s->i++;
        if (!is_digit(s))
            return false;
        while (is_digit(s))
            s->i++;
    }
    if (peek_is(s, 'e') || peek_is(s, 'E')) {
        s->i++;
        if (peek_is(s, '+') || peek_is(s, '-'))
            s->i++;
        if (!is_digit(s))
            return false;
        while (is_digit(s))
            s->i++;
    }
    if (s->i - start >= 64)
        s->ask_cjson = true;
    return true;
}

static bool value(struct scan *s);

/* Elements of an array (close ']') or members of an object (close '}'). */
static bool container(struct scan *s, char close)
{
    if (++s->depth > MAX_DEPTH)
        return false;
    s->i++;
    skip_ws(s);
    if (peek_is(s, close)) {
        s->i++;
        s->depth--;
        return true;
    }
    for (;;) {
        skip_ws(s);
        if (close == '}') {
            if (!peek_is(s, '"') || !string(s))
                return false;
            skip_ws(s);
            if (!peek_is(s, ':'))
                return false;
            s->i++;
        }
        if (!value(s))
            return false;
        skip_ws(s);
        if (peek_is(s, ',')) {
            s->i++;
            continue;
        }
        if (peek_is(s, close)) {
            s->i++;
            s->depth--;
            return true;
        }
        return false;
    }
}

static bool value(struct scan *s)
{
    skip_ws(s);
    if (s->i >= s->n)
        return false;
    switch (s->p[s->i]) {
    case '{':
        return container(s, '}');
    case '[':
        return container(s, ']');
    case '"':
        return string(s);
    case 't':
        return literal(s, "true");
    case 'f':
        return literal(s, "false");
    case 'n':
        return literal(s, "null");
    default:
        return number(s);
    }
}

/* Runs the scanner: true when p[0..n) is one valid document; s->i is where
 * it stopped. */
static bool scan_all(struct scan *s)
{
    if (!value(s))
        return false;
    skip_ws(s);
    return s->i == s->n;
}

bool payload_is_json(const char *p, size_t n, size_t *err_at)
{
    struct scan s = { p, n, 0, 0, false };
    bool scanned = scan_all(&s);
    if (scanned && !s.ask_cjson)
        return true;
    const char *end = NULL;
    pthread_mutex_lock(&cjson_lock);
    cJSON *v = cJSON_ParseWithLengthOpts(p, n, &end, 0);
    bool ok = v != NULL;
    cJSON_Delete(v);
    pthread_mutex_unlock(&cjson_lock);
    if (ok) {
        size_t at = (size_t)(end - p);
        while (at < n && is_ws(p[at]))
            at++;
        if (at == n)
            return true;
        *err_at = at; /* something follows the value */
        return false;
    }
    size_t approx = end && end >= p ? (size_t)(end - p) : 0;
    /* Where the scanner stopped, unless it accepted what cJSON refused. */
    *err_at = scanned ? (approx > n ? n : approx) : (s.i > n ? n : s.i);
    return false;
}

int payload_json_field(const char *p, size_t n, const char *name, char *out, size_t cap)
{
    pthread_mutex_lock(&cjson_lock); /* a failed parse writes cJSON's global error position */
    cJSON *root = cJSON_ParseWithLength(p, n);
    pthread_mutex_unlock(&cjson_lock);
    int len = -1;
    const cJSON *f = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, name) : NULL;
    if (cJSON_IsString(f) && strlen(f->valuestring) < cap) {
        len = (int)strlen(f->valuestring);
        memcpy(out, f->valuestring, (size_t)len + 1);
    } else if (cJSON_IsNumber(f)) {
        len = snprintf(out, cap, "%.17g", f->valuedouble);
        if (len < 0 || (size_t)len >= cap)
            len = -1;
    }
    cJSON_Delete(root);
    return len;
}
