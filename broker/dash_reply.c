/*
 * dash_reply.c - see dash_reply.h.
 */
#include "dash_reply.h"

#include "textfmt.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *reason(int code)
{
    switch (code) {
    case 200: return "OK";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

void dreply_body(struct evhttp_request *req, int code, const char *type, const void *body, size_t len)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    if (type)
        evhttp_add_header(h, "Content-Type", type);
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    if (!evhttp_find_header(h, "Cache-Control"))
        evhttp_add_header(h, "Cache-Control", "no-store");
    struct evbuffer *out = evbuffer_new();
    if (out && len)
        evbuffer_add(out, body, len);
    evhttp_send_reply(req, code, reason(code), out);
    if (out)
        evbuffer_free(out);
}

void dreply_json(struct evhttp_request *req, int code, const resp_buf *b)
{
    dreply_body(req, code, "application/json; charset=utf-8", b->data, b->len);
}

void dreply_error(struct evhttp_request *req, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    resp_buf b;
    resp_buf_init(&b);
    resp_buf_append(&b, "{\"error\":", 9);
    text_json_str(&b, msg, strlen(msg));
    resp_buf_append(&b, "}\n", 2);
    dreply_json(req, code, &b);
    resp_buf_free(&b);
}

void djson_key(resp_buf *b, const char *key, int first)
{
    if (!first)
        resp_buf_append(b, ",", 1);
    text_json_str(b, key, strlen(key));
    resp_buf_append(b, ":", 1);
}

void djson_resp(resp_buf *b, const resp_val *v)
{
    if (!v) {
        resp_buf_append(b, "null", 4);
        return;
    }
    switch (v->type) {
    case RESP_T_SIMPLE:
    case RESP_T_BULK:
    case RESP_T_BIGNUM:
        text_json_str(b, v->str, v->len);
        break;
    case RESP_T_ERROR:
        resp_buf_append(b, "{\"error\":", 9);
        text_json_str(b, v->str, v->len);
        resp_buf_append(b, "}", 1);
        break;
    case RESP_T_INT:
        resp_buf_printf(b, "%lld", v->integer);
        break;
    case RESP_T_BOOL:
        resp_buf_printf(b, "%s", v->integer ? "true" : "false");
        break;
    case RESP_T_DOUBLE:
        resp_buf_printf(b, "%.17g", v->dbl);
        break;
    case RESP_T_NULL:
        resp_buf_append(b, "null", 4);
        break;
    case RESP_T_MAP:
        resp_buf_append(b, "{", 1);
        for (size_t i = 0; i + 1 < v->n; i += 2) {
            const resp_val *k = v->elem[i];
            if (i)
                resp_buf_append(b, ",", 1);
            if (k->str)
                text_json_str(b, k->str, k->len);
            else
                resp_buf_printf(b, "\"%lld\"", k->integer);
            resp_buf_append(b, ":", 1);
            djson_resp(b, v->elem[i + 1]);
        }
        resp_buf_append(b, "}", 1);
        break;
    default: /* arrays, sets, pushes */
        resp_buf_append(b, "[", 1);
        for (size_t i = 0; i < v->n; i++) {
            if (i)
                resp_buf_append(b, ",", 1);
            djson_resp(b, v->elem[i]);
        }
        resp_buf_append(b, "]", 1);
    }
}
