/*
 * cluster_sync.c - pulls newer slot maps from peers (see cluster_sync.h).
 */
#include "cluster_sync.h"

#include "cluster.h"
#include "log.h"
#include "resp.h"
#include "xalloc.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define PEER_TIMEOUT_MS 500

struct cluster_sync {
    struct cluster *cl;
    char *password;
    int interval_ms;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop;
};

static int dial(const char *host, int port)
{
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai = NULL;
    if (getaddrinfo(host, service, &hints, &ai) != 0)
        return -1;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = { .tv_sec = 0, .tv_usec = PEER_TIMEOUT_MS * 1000 };
    if (fd >= 0) { /* on Linux SO_SNDTIMEO bounds connect() too */
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

/* Sends one command and reads its reply: NULL on any failure. */
static resp_val *ask(int fd, resp_reader *rd, int argc, const char *const *argv)
{
    resp_buf b;
    resp_buf_init(&b);
    resp_add_commandv(&b, argc, argv);
    bool sent = send(fd, b.data, b.len, MSG_NOSIGNAL) == (ssize_t)b.len;
    resp_buf_free(&b);
    char buf[16384];
    while (sent) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            return NULL;
        for (size_t off = 0; off < (size_t)n;) {
            size_t used = 0;
            resp_val *v = NULL;
            int r = resp_reader_feed(rd, buf + off, (size_t)n - off, &used, &v);
            off += used;
            if (r == RESP_EPROTO)
                return NULL;
            if (r == RESP_OK)
                return v;
        }
    }
    return NULL;
}

/* The map of the node at host:port as JSON (malloc'd), or NULL. */
static char *peer_map(const char *host, int port, const char *password)
{
    int fd = dial(host, port);
    if (fd < 0)
        return NULL;
    resp_reader *rd = resp_reader_new(NULL);
    char *json = NULL;
    bool authed = true;
    if (password[0]) {
        const char *auth[] = { "AUTH", password };
        resp_val *v = ask(fd, rd, 2, auth);
        authed = v && v->type == RESP_T_SIMPLE;
        resp_val_free(v);
    }
    const char *getmap[] = { "CLUSTER", "GETMAP" };
    resp_val *v = authed ? ask(fd, rd, 2, getmap) : NULL;
    if (v && v->type == RESP_T_BULK)
        json = xalloc_check(strdup(v->str), v->len + 1);
    resp_val_free(v);
    resp_reader_free(rd);
    close(fd);
    return json;
}

/* One round: every other node of the map's first group (g1, which keeps
 * the map: every map its nodes have was committed there), newest kept. */
static void pull_round(struct cluster_sync *cs)
{
    const struct cluster_map *m = cluster_current(cs->cl);
    if (!m)
        return;
    const struct cluster_group *g1 = &m->groups[0];
    for (int i = 0; i < g1->nnodes; i++) {
        const struct cluster_node *n = &g1->nodes[i];
        if (!strcmp(n->id, cs->cl->myid))
            continue;
        char *json = peer_map(n->host, n->port, cs->password);
        char err[256];
        uint64_t had = m->epoch;
        if (json && cluster_take_committed(cs->cl, json, strlen(json), err, sizeof err) == 1)
            log_warn("cluster: took map epoch %llu from node %s at %s:%d of %s, which keeps the map (this node had "
                     "epoch %llu: it missed a change while it was away)",
                     (unsigned long long)cluster_current(cs->cl)->epoch, n->id, n->host, n->port, g1->name,
                     (unsigned long long)had);
        free(json);
        if (cluster_current(cs->cl) != m)
            return; /* a new map: its first group is the one to ask next round */
    }
}

static void *sync_main(void *arg)
{
    struct cluster_sync *cs = arg;
    pthread_mutex_lock(&cs->lock);
    while (!cs->stop) {
        pthread_mutex_unlock(&cs->lock);
        pull_round(cs);
        pthread_mutex_lock(&cs->lock);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        long long ns = until.tv_nsec + (long long)cs->interval_ms * 1000000LL;
        until.tv_sec += (time_t)(ns / 1000000000LL);
        until.tv_nsec = (long)(ns % 1000000000LL);
        while (!cs->stop && pthread_cond_timedwait(&cs->wake, &cs->lock, &until) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&cs->lock);
    return NULL;
}

struct cluster_sync *cluster_sync_start(struct cluster *cl, const char *password, int interval_ms)
{
    struct cluster_sync *cs = xcalloc(1, sizeof *cs);
    cs->cl = cl;
    cs->password = xalloc_check(strdup(password ? password : ""), 1);
    cs->interval_ms = interval_ms;
    pthread_mutex_init(&cs->lock, NULL);
    pthread_cond_init(&cs->wake, NULL);
    int rc = pthread_create(&cs->thread, NULL, sync_main, cs);
    if (rc != 0) {
        log_error("cluster: cannot start the map catch-up thread: %s (a node that was down keeps its older map "
                  "until spool cluster sends it the new one)", strerror(rc));
        pthread_cond_destroy(&cs->wake);
        pthread_mutex_destroy(&cs->lock);
        free(cs->password);
        free(cs);
        return NULL;
    }
    return cs;
}

void cluster_sync_stop(struct cluster_sync *cs)
{
    if (!cs)
        return;
    pthread_mutex_lock(&cs->lock);
    cs->stop = true;
    pthread_cond_signal(&cs->wake);
    pthread_mutex_unlock(&cs->lock);
    pthread_join(cs->thread, NULL);
    pthread_cond_destroy(&cs->wake);
    pthread_mutex_destroy(&cs->lock);
    free(cs->password);
    free(cs);
}
