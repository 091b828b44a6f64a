/*
 * scriptcache.c - the shared cache of script bodies (see scriptcache.h).
 *
 * A doubly linked list, most recently used first; lookups walk it from
 * the head, so the scripts an application runs all the time are found at
 * once. It holds at most max_eval + max_load entries.
 */
#include "scriptcache.h"

#include "sha1.h"
#include "xalloc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct entry {
    struct entry *prev, *next;
    char sha[SHA1_HEX + 1];
    char *body;
    size_t len;
    bool from_load;
};

struct script_cache {
    pthread_mutex_t lock;
    struct entry *head, *tail;
    size_t n_eval, n_load, max_eval, max_load;
    _Atomic uint64_t gen;
};

struct script_cache *scache_new(size_t max_eval, size_t max_load)
{
    struct script_cache *sc = xcalloc(1, sizeof *sc);
    pthread_mutex_init(&sc->lock, NULL);
    sc->max_eval = max_eval ? max_eval : 1;
    sc->max_load = max_load ? max_load : 1;
    return sc;
}

static void unlink_locked(struct script_cache *sc, struct entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        sc->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        sc->tail = e->prev;
    e->prev = e->next = NULL;
}

static void push_front_locked(struct script_cache *sc, struct entry *e)
{
    e->prev = NULL;
    e->next = sc->head;
    if (sc->head)
        sc->head->prev = e;
    sc->head = e;
    if (!sc->tail)
        sc->tail = e;
}

static void drop_locked(struct script_cache *sc, struct entry *e)
{
    unlink_locked(sc, e);
    if (e->from_load)
        sc->n_load--;
    else
        sc->n_eval--;
    free(e->body);
    free(e);
}

static struct entry *find_locked(struct script_cache *sc, const char *sha, size_t shalen)
{
    if (shalen != SHA1_HEX)
        return NULL;
    for (struct entry *e = sc->head; e; e = e->next)
        if (strncasecmp(e->sha, sha, SHA1_HEX) == 0)
            return e;
    return NULL;
}

/* The least recently used entry of one kind. */
static struct entry *oldest_locked(struct script_cache *sc, bool from_load)
{
    for (struct entry *e = sc->tail; e; e = e->prev)
        if (e->from_load == from_load)
            return e;
    return NULL;
}

void scache_add(struct script_cache *sc, const char *sha, const char *body, size_t len, bool from_load)
{
    pthread_mutex_lock(&sc->lock);
    struct entry *e = find_locked(sc, sha, SHA1_HEX);
    if (e) {
        unlink_locked(sc, e);
        if (from_load && !e->from_load) {
            e->from_load = true; /* SCRIPT LOAD pins a script EVAL brought in */
            sc->n_eval--;
            sc->n_load++;
        }
        push_front_locked(sc, e);
    } else {
        e = xcalloc(1, sizeof *e);
        memcpy(e->sha, sha, SHA1_HEX);
        e->body = xmalloc(len + 1);
        memcpy(e->body, body, len);
        e->body[len] = '\0';
        e->len = len;
        e->from_load = from_load;
        if (from_load)
            sc->n_load++;
        else
            sc->n_eval++;
        push_front_locked(sc, e);
    }
    while (sc->n_eval > sc->max_eval)
        drop_locked(sc, oldest_locked(sc, false));
    while (sc->n_load > sc->max_load)
        drop_locked(sc, oldest_locked(sc, true));
    pthread_mutex_unlock(&sc->lock);
}

bool scache_lookup(struct script_cache *sc, const char *sha, size_t shalen, char **body, size_t *len)
{
    pthread_mutex_lock(&sc->lock);
    struct entry *e = find_locked(sc, sha, shalen);
    if (e) {
        unlink_locked(sc, e);
        push_front_locked(sc, e);
        if (body) {
            *body = xmalloc(e->len + 1);
            memcpy(*body, e->body, e->len + 1);
            *len = e->len;
        }
    }
    pthread_mutex_unlock(&sc->lock);
    return e != NULL;
}

void scache_flush(struct script_cache *sc)
{
    pthread_mutex_lock(&sc->lock);
    while (sc->head)
        drop_locked(sc, sc->head);
    atomic_fetch_add(&sc->gen, 1);
    pthread_mutex_unlock(&sc->lock);
}

uint64_t scache_generation(struct script_cache *sc)
{
    return atomic_load(&sc->gen);
}

size_t scache_count(struct script_cache *sc)
{
    pthread_mutex_lock(&sc->lock);
    size_t n = sc->n_eval + sc->n_load;
    pthread_mutex_unlock(&sc->lock);
    return n;
}

void scache_free(struct script_cache *sc)
{
    if (!sc)
        return;
    while (sc->head)
        drop_locked(sc, sc->head);
    pthread_mutex_destroy(&sc->lock);
    free(sc);
}
