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

/* Name records: how shards and I/O threads answer a gather with a list of
 * names (queues, channels), binary-safe: "<len>:<name bytes><rest>\n",
 * where rest is text without a newline (may be empty). */
struct name_rec {
    const char *name;
    size_t len;
    const char *rest;   /* points into the part; ends at the next '\n' */
};

/* Starts a record; the caller appends its rest and then "\n". */
void text_name_put(resp_buf *b, const char *name, size_t len);
/* Every record of parts[0..nparts), sorted by name (memcmp, then length).
 * Returns a malloc'd array (NULL when empty) pointing into the parts. */
struct name_rec *text_name_recs(const resp_buf *parts, int nparts, size_t *n);
int text_name_cmp(const void *a, const void *b);

#endif
