/*
 * tls.h - TLS for client connections (OpenSSL through libevent's
 * bufferevent_openssl).
 *
 * The server makes one context at start from --tls-cert-file,
 * --tls-key-file and --tls-ca-cert-file (tls_ctx_new; a bad file refuses
 * the start), and a second listener on --tls-port whose connections reach
 * the I/O threads marked tls (MSG_CONN). conn.c then wraps the socket with
 * tls_bufferevent_new() instead of a plain socket bufferevent; everything
 * above the bufferevent is the same. Client certificates: --tls-auth-clients
 * no (not asked for), optional (checked against the CA when sent), yes
 * (required). Ground layer: no broker state; the context is shared by the
 * I/O threads read-only (OpenSSL's SSL_CTX is safe for that).
 */
#ifndef SPOOL_TLS_H
#define SPOOL_TLS_H

#include <stddef.h>

struct event_base;
struct bufferevent;

enum tls_auth { TLS_AUTH_NO, TLS_AUTH_OPTIONAL, TLS_AUTH_YES };

/* 0 with *ctx, or -1 with a sentence in err naming the file and the fix. */
int tls_ctx_new(void **ctx, const char *cert, const char *key, const char *ca, int auth_clients, char *err,
                size_t cap);
void tls_ctx_free(void *ctx);
/* A server-side TLS bufferevent over fd (closed with it); NULL on failure
 * (fd is then closed). */
struct bufferevent *tls_bufferevent_new(struct event_base *base, int fd, void *ctx);

/* The HTTP admin over HTTPS (admin-tls): a context with the same
 * certificate and key (no client certificates: the dashboard asks for a
 * password), whose port answers a plain HTTP request with a plain 400
 * that says to use https:// (instead of a silent close); and the
 * bufferevent evhttp wraps each accepted socket in (evhttp_set_bevcb). */
int tls_http_ctx_new(void **ctx, const char *cert, const char *key, char *err, size_t cap);
struct bufferevent *tls_http_bufferevent(struct event_base *base, void *ctx);

#endif
