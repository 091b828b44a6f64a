/*
 * textfmt.h - escaping of names for the text formats spoold speaks besides
 * RESP: JSON strings (events, the HTTP API) and Prometheus label values.
 * Queue names are arbitrary bytes; these keep the output well formed.
 */
#ifndef SPOOL_TEXTFMT_H
#define SPOOL_TEXTFMT_H

#include "resp.h"

#include <stddef.h>

/* Appends s[0..n) as a quoted JSON string. */
void text_json_str(resp_buf *b, const char *s, size_t n);
/* Appends s[0..n) escaped for a Prometheus label value (without quotes). */
void text_prom_label(resp_buf *b, const char *s, size_t n);

#endif
