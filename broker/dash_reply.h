/*
 * dash_reply.h - how the dashboard answers: JSON bodies, errors as
 * {"error": "..."} with a status, and RESP values rendered as JSON.
 *
 * Main thread only (evhttp). Every answer carries Cache-Control: no-store
 * and X-Content-Type-Options: nosniff.
 */
#ifndef SPOOL_DASH_REPLY_H
#define SPOOL_DASH_REPLY_H

#include "resp.h"

#include <stddef.h>

struct evhttp_request;

/* Sends b (JSON) with the status code; b is left for the caller to free. */
void dreply_json(struct evhttp_request *req, int code, const resp_buf *b);
/* {"error": "<formatted message>"} with the status code. */
void dreply_error(struct evhttp_request *req, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Any body with its type (and extra headers already set by the caller). */
void dreply_body(struct evhttp_request *req, int code, const char *type, const void *body, size_t len);

/* A RESP value as JSON: maps become objects (keys as strings), arrays
 * arrays, strings strings, nil null, errors {"error": text}. */
void djson_resp(resp_buf *b, const resp_val *v);
/* Appends "key": as an object member (with a leading comma unless first). */
void djson_key(resp_buf *b, const char *key, int first);

#endif
