/*
 * payload.h - checks of job payloads before they reach a shard.
 *
 * Runs on the I/O threads (so the cost spreads over them). A payload must
 * be one JSON value (cJSON parses it; only whitespace may follow) unless the
 * server or, later, the queue is configured for raw payloads.
 */
#ifndef SPOOL_PAYLOAD_H
#define SPOOL_PAYLOAD_H

#include <stdbool.h>
#include <stddef.h>

/* Returns true when p[0..n) is one valid JSON value; otherwise false with
 * *err_at set to the 0-based byte offset where parsing failed. */
bool payload_is_json(const char *p, size_t n, size_t *err_at);

/* The top-level field name of the JSON object p[0..n), when it is a string
 * or a number, as text in out (NUL-terminated); returns its length, or -1
 * when p is not an object, has no such field, or it does not fit in cap.
 * Used for a queue's group-from (any thread). */
int payload_json_field(const char *p, size_t n, const char *name, char *out, size_t cap);

#endif
