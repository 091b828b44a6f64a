/*
 * rawinfo.c - see rawinfo.h. Blocking socket with send/receive timeouts;
 * one request at a time; the reply reader bounds every length.
 */
#include "rawinfo.h"

#include "resp.h"

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define IO_TIMEOUT_S 10

/* ============================================================ the socket */

static int dial(const char *endpoint, int timeout_s, char *err, size_t errlen)
{
    char host[300];
    const char *colon = strrchr(endpoint, ':');
    if (!colon) {
        snprintf(err, errlen, "bad endpoint %s", endpoint);
        return -1;
    }
    bool v6 = endpoint[0] == '[';
    snprintf(host, sizeof host, "%.*s", (int)(colon - endpoint - 2 * v6), endpoint + v6);
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai = NULL;
    int g = getaddrinfo(host, colon + 1, &hints, &ai);
    if (g != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(g));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = { .tv_sec = timeout_s };
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        snprintf(err, errlen, "cannot connect to %s: %s", endpoint, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

struct rawconn {
    int fd;
    resp_reader *rd;
    char buf[16384];          /* received, not yet fed to the reader */
    size_t off, n;
};

int rawconn_send(struct rawconn *c, int argc, const char *const *argv, const size_t *lens, char *err, size_t errlen)
{
    resp_buf b;
    resp_buf_init(&b);
    if (lens)
        resp_add_command(&b, argc, argv, lens);
    else
        resp_add_commandv(&b, argc, argv);
    ssize_t w = send(c->fd, b.data, b.len, MSG_NOSIGNAL);
    bool sent = w == (ssize_t)b.len;
    resp_buf_free(&b);
    if (!sent)
        snprintf(err, errlen, "sending %s failed: %s", argv[0], w < 0 ? strerror(errno) : "partly sent");
    return sent ? 0 : -1;
}

int rawconn_read(struct rawconn *c, resp_val **out, char *err, size_t errlen)
{
    *out = NULL;
    for (;;) {
        while (c->off < c->n) {
            size_t used = 0;
            int r = resp_reader_feed(c->rd, c->buf + c->off, c->n - c->off, &used, out);
            c->off += used;
            if (r == RESP_EPROTO) {
                snprintf(err, errlen, "%s", resp_reader_error(c->rd));
                return -1;
            }
            if (r == RESP_OK)
                return 0; /* what follows is the next reply's */
        }
        ssize_t n = recv(c->fd, c->buf, sizeof c->buf, 0);
        if (n <= 0) {
            snprintf(err, errlen, "no reply: %s", n == 0 ? "connection closed" : strerror(errno));
            return -1;
        }
        c->off = 0;
        c->n = (size_t)n;
    }
}

/* ================================================================ auth */

static void percent_decode(char *s)
{
    char *o = s;
    for (; *s; s++) {
        if (s[0] == '%' && isxdigit((unsigned char)s[1]) && isxdigit((unsigned char)s[2])) {
            char hex[3] = { s[1], s[2], 0 };
            *o++ = (char)strtol(hex, NULL, 16);
            s += 2;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
}

/* user and pass from "scheme://[user]:pass@host": true when a password is there. */
static bool url_password(const char *url, char *user, char *pass, size_t cap)
{
    const char *p = url ? strstr(url, "://") : NULL;
    const char *at = p ? strrchr(p + 3, '@') : NULL;
    const char *colon = at ? memchr(p + 3, ':', (size_t)(at - p - 3)) : NULL;
    if (!colon)
        return false;
    snprintf(user, cap, "%.*s", (int)(colon - p - 3), p + 3);
    snprintf(pass, cap, "%.*s", (int)(at - colon - 1), colon + 1);
    percent_decode(user);
    percent_decode(pass);
    if (!*user)
        snprintf(user, cap, "default");
    return true;
}

/* =============================================================== fetch */

static int reply_text(resp_val *v, char **text, char *err, size_t errlen)
{
    char num[32];
    if (v->type == RESP_T_ERROR)
        snprintf(err, errlen, "%s", v->str);
    else if (v->type == RESP_T_INT) /* CLUSTER SETMAP's 1 or 0 */
        snprintf(num, sizeof num, "%lld", v->integer), *text = strdup(num);
    else if (v->type == RESP_T_NULL) /* CLUSTER GETMAP without a map */
        *text = strdup("");
    else if ((v->type == RESP_T_ARRAY || v->type == RESP_T_MAP) && v->n == 2 && v->elem[1]->type == RESP_T_BULK)
        *text = strdup(v->elem[1]->str); /* CONFIG GET of one setting: its value */
    else if (v->type != RESP_T_BULK && v->type != RESP_T_SIMPLE)
        snprintf(err, errlen, "the reply is something other than text");
    else
        *text = strdup(v->str);
    return *text ? 0 : -1;
}

int rawinfo_fetch(const char *endpoint, const char *url, const char *section, char **text,
                  char *err, size_t errlen)
{
    const char *info[] = { "INFO", section };
    return rawinfo_command(endpoint, url, section ? 2 : 1, info, IO_TIMEOUT_S, text, err, errlen);
}

struct rawconn *rawconn_open(const char *endpoint, const char *url, int timeout_s, char *err, size_t errlen)
{
    int fd = dial(endpoint, timeout_s, err, errlen);
    if (fd < 0)
        return NULL;
    struct rawconn *c = calloc(1, sizeof *c);
    c->fd = fd;
    c->rd = resp_reader_new(NULL);
    char user[256], pass[256];
    if (url_password(url, user, pass, sizeof user)) {
        const char *auth[] = { "AUTH", user, pass };
        resp_val *v = NULL;
        int rc = rawconn_call(c, 3, auth, NULL, &v, err, errlen);
        if (rc == 0 && v->type == RESP_T_ERROR)
            rc = -1, snprintf(err, errlen, "%s", v->str);
        resp_val_free(v);
        if (rc < 0) {
            rawconn_close(c);
            return NULL;
        }
    }
    return c;
}

int rawconn_call(struct rawconn *c, int argc, const char *const *argv, const size_t *lens, resp_val **out, char *err,
                 size_t errlen)
{
    *out = NULL;
    if (rawconn_send(c, argc, argv, lens, err, errlen) < 0)
        return -1;
    return rawconn_read(c, out, err, errlen);
}

void rawconn_close(struct rawconn *c)
{
    if (!c)
        return;
    resp_reader_free(c->rd);
    close(c->fd);
    free(c);
}

int rawinfo_command(const char *endpoint, const char *url, int argc, const char *const *argv, int timeout_s,
                    char **text, char *err, size_t errlen)
{
    *text = NULL;
    struct rawconn *c = rawconn_open(endpoint, url, timeout_s, err, errlen);
    if (!c)
        return -1;
    resp_val *v = NULL;
    int rc = rawconn_call(c, argc, argv, NULL, &v, err, errlen);
    if (rc == 0)
        rc = reply_text(v, text, err, errlen);
    resp_val_free(v);
    rawconn_close(c);
    return rc;
}
