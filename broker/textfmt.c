/*
 * textfmt.c - see textfmt.h.
 */
#include "textfmt.h"

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
