/*
 * tls.c - TLS contexts and bufferevents (see tls.h).
 */
#include "tls.h"

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void ssl_error(char *err, size_t cap, const char *what, const char *file)
{
    char detail[256] = "";
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, detail, sizeof detail);
    ERR_clear_error();
    snprintf(err, cap, "%s %s: %s", what, file, detail[0] ? detail : "unknown OpenSSL error");
}

int tls_ctx_new(void **out, const char *cert, const char *key, const char *ca, int auth_clients, char *err,
                size_t cap)
{
    *out = NULL;
    if (!cert[0] || !key[0]) {
        snprintf(err, cap, "--tls-port needs --tls-cert-file and --tls-key-file (PEM files)");
        return -1;
    }
    if (auth_clients != TLS_AUTH_NO && !ca[0]) {
        snprintf(err, cap, "--tls-auth-clients %s needs --tls-ca-cert-file (the CA that signs client certificates)",
                 auth_clients == TLS_AUTH_YES ? "yes" : "optional");
        return -1;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        ssl_error(err, cap, "cannot make a TLS context", "");
        return -1;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        ssl_error(err, cap, "cannot load the certificate (--tls-cert-file)", cert);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        ssl_error(err, cap, "cannot load the private key (--tls-key-file)", key);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ssl_error(err, cap, "the private key does not match the certificate", key);
        goto fail;
    }
    if (ca[0] && SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
        ssl_error(err, cap, "cannot load the CA certificates (--tls-ca-cert-file)", ca);
        goto fail;
    }
    if (auth_clients == TLS_AUTH_YES)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    else if (auth_clients == TLS_AUTH_OPTIONAL)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    *out = ctx;
    return 0;
fail:
    SSL_CTX_free(ctx);
    return -1;
}

void tls_ctx_free(void *ctx)
{
    SSL_CTX_free(ctx);
}

/* A server-side TLS bufferevent over fd (-1: set later by evhttp); NULL
 * on failure, fd left open. */
static struct bufferevent *accepting(struct event_base *base, int fd, void *ctx)
{
    SSL *ssl = SSL_new(ctx);
    if (!ssl)
        return NULL;
    struct bufferevent *bev =
        bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        SSL_free(ssl);
        return NULL;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

struct bufferevent *tls_bufferevent_new(struct event_base *base, int fd, void *ctx)
{
    struct bufferevent *bev = accepting(base, fd, ctx);
    if (!bev)
        evutil_closesocket(fd);
    return bev;
}

/* ------------------------------------------------------ the HTTPS admin */

struct bufferevent *tls_http_bufferevent(struct event_base *base, void *ctx)
{
    return accepting(base, -1, ctx);
}

/* A handshake that OpenSSL ended because the first bytes were a plain
 * HTTP request ("GET ", "POST ", ..., or a proxy's CONNECT). */
static bool plain_http_seen(int where, int ret)
{
    if (!(where & SSL_CB_ACCEPT_EXIT) || ret > 0)
        return false;
    unsigned long e = ERR_peek_last_error();
    return ERR_GET_LIB(e) == ERR_LIB_SSL &&
           (ERR_GET_REASON(e) == SSL_R_HTTP_REQUEST || ERR_GET_REASON(e) == SSL_R_HTTPS_PROXY_REQUEST);
}

/* Answers a plain HTTP request on the HTTPS port in plain HTTP, as nginx
 * does: 400 and a sentence saying to use https://. The rest of the request
 * is read first, so that the close that follows does not reset it away. */
static void answer_plain_http(const SSL *ssl, int where, int ret)
{
    if (!plain_http_seen(where, ret))
        return;
    int fd = SSL_get_fd(ssl);
    if (fd < 0)
        return;
    char sink[4096];
    while (read(fd, sink, sizeof sink) > 0) {
    }
    static const char body[] = "This port serves HTTPS (spoold admin-tls): use https:// in the URL, not http://.\n";
    char resp[512];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s", sizeof body - 1, body);
    if (write(fd, resp, (size_t)n) == n)
        shutdown(fd, SHUT_WR);
}

int tls_http_ctx_new(void **ctx, const char *cert, const char *key, char *err, size_t cap)
{
    if (!cert[0] || !key[0]) {
        snprintf(err, cap, "admin-tls yes needs --tls-cert-file and --tls-key-file (PEM files), or set admin-tls no");
        return -1;
    }
    if (tls_ctx_new(ctx, cert, key, "", TLS_AUTH_NO, err, cap) < 0)
        return -1;
    SSL_CTX_set_info_callback(*ctx, answer_plain_http);
    return 0;
}
