/*
 * textfmt.c - see textfmt.h.
 */
#include "textfmt.h"
#include "xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void text_json_str(resp_buf *b, const char *s, size_t n)
{
    resp_buf_append(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            char e[2] = { '\\', (char)ch };
            resp_buf_append(b, e, 2);
        } else if (ch < 0x20 || ch == 0x7f) {
            resp_buf_printf(b, "\\u%04x", ch);
        } else {
            resp_buf_append(b, &s[i], 1);
        }
    }
    resp_buf_append(b, "\"", 1);
}

void text_prom_label(resp_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '\\' || ch == '"')
            resp_buf_append(b, "\\", 1), resp_buf_append(b, &ch, 1);
        else if (ch == '\n')
            resp_buf_append(b, "\\n", 2);
        else
            resp_buf_append(b, &ch, 1);
    }
}

void text_name_put(resp_buf *b, const char *name, size_t len)
{
    resp_buf_printf(b, "%zu:", len);
    resp_buf_append(b, name, len);
}

int text_name_cmp(const void *a, const void *b)
{
    const struct name_rec *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->name, y->name, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

struct name_rec *text_name_recs(const resp_buf *parts, int nparts, size_t *out_n)
{
    struct name_rec *v = NULL;
    size_t n = 0, cap = 0;
    for (int k = 0; k < nparts; k++) {
        const char *p = parts[k].data, *end = p + parts[k].len;
        while (p && p < end) {
            char *colon;
            size_t len = strtoul(p, &colon, 10);
            if (*colon != ':' || (size_t)(end - colon - 1) < len)
                break; /* not a record: the writer is ours, so never expected */
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                v = xrealloc(v, cap * sizeof *v);
            }
            v[n].name = colon + 1;
            v[n].len = len;
            v[n].rest = colon + 1 + len;
            const char *nl = memchr(v[n].rest, '\n', (size_t)(end - v[n].rest));
            p = nl ? nl + 1 : end;
            n++;
        }
    }
    if (n)
        qsort(v, n, sizeof *v, text_name_cmp);
    *out_n = n;
    return v;
}
