/*
 * shard.c - the shard thread: its loop, turns, deadline heap, and the shard
 * side of blocking pops (see shard.h, claim.h).
 *
 * A waiter is one BLPOP/BRPOP parked in this shard: it holds the request
 * message (which becomes the reply), one wlink per key of this shard, and a
 * deadline node. Waiters are served at the end of each turn from the list of
 * queues that got jobs: for each such queue, oldest waiter first, while the
 * queue has jobs. A waiter whose claim was already taken elsewhere is
 * dropped without touching the queue.
 */
#include "shard.h"

#include "claim.h"
#include "commands.h"
#include "io.h"
#include "log.h"
#include "clock.h"
#include "msg.h"
#include "hash.h"
#include "server.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TK_WAITER = 1 };

struct waiter {
    struct tnode timer;          /* first member: tnode* <-> waiter* */
    struct msg *m;
    int nlinks;
    struct wlink links[];
};

static void shard_end_turn(struct shard *s);

/* -------------------------------------------------------------- helpers */

struct queue *shard_queue(struct shard *s, const struct msg *m, int i, bool create)
{
    const char *name = m->req.argv[i];
    size_t len = m->req.len[i];
    return create ? qtable_get(&s->queues, name, len) : qtable_find(&s->queues, name, len);
}

void shard_reply(struct shard *s, struct msg *m)
{
    m->type = MSG_REPLY;
    msg_batch_add(&s->replies[m->origin], m);
}

void shard_queue_changed(struct shard *s, struct queue *q)
{
    if (q->nwaiters == 0 || q->in_ready_list)
        return;
    q->in_ready_list = true;
    q->ready_next = s->ready_head;
    s->ready_head = q;
}

void shard_queue_gc(struct shard *s, struct queue *q)
{
    if (q && !s->stopping)
        qtable_maybe_free(&s->queues, q);
}

void shard_encode_pop(struct msg *m, const struct queue *q, const struct job *j)
{
    resp_add_array(&m->out, 2);
    resp_add_bulk(&m->out, q->name, q->namelen);
    resp_add_bulk(&m->out, j->payload, j->len);
}

/* -------------------------------------------------------------- waiters */

static void waiter_unlink(struct shard *s, struct waiter *w)
{
    for (int i = 0; i < w->nlinks; i++) {
        struct queue *q = w->links[i].q;
        queue_wait_unlink(&w->links[i]);
        if (q)
            shard_queue_gc(s, q);
    }
    theap_remove(&s->timers, &w->timer);
    if (w->m->claim && w->m->claim->waiters[s->id] == w)
        w->m->claim->waiters[s->id] = NULL;
}

/* Removes w everywhere; returns its message (now owned by the caller). */
static struct msg *waiter_remove(struct shard *s, struct waiter *w)
{
    waiter_unlink(s, w);
    struct msg *m = w->m;
    free(w);
    return m;
}

/* The client of m was answered elsewhere (or is gone): forget it quietly. */
static void waiter_drop(struct shard *s, struct waiter *w)
{
    msg_free(waiter_remove(s, w));
}

static bool pop_left_for(const struct msg *m)
{
    return m->cmd->flags & CMD_LEFT;
}

/* Delivers a job of q to the request m (its claim is already ours). Leaves
 * q in the table even when it becomes empty: the caller collects it. */
static void deliver(struct shard *s, struct msg *m, struct queue *q)
{
    bool left = pop_left_for(m);
    struct job *j = left ? jobq_pop_left(&q->ready) : jobq_pop_right(&q->ready);
    ASSERT(j != NULL);
    q->popped_total++;
    shard_encode_pop(m, q, j);
    m->job = j;
    m->job_left = left;
    m->job_queue = strdup(q->name);
    if (!m->job_queue)
        abort();
    shard_reply(s, m);
}

static bool key_is_mine(const struct shard *s, const struct msg *m, int i)
{
    return shard_of(m->req.argv[i], m->req.len[i], s->srv->nshards) == s->id;
}

/* First queue (in argument order) among this shard's keys that has a job. */
static struct queue *first_ready(struct shard *s, struct msg *m, int from, int to, bool all)
{
    for (int i = from; i < to; i++) {
        if (!all && !key_is_mine(s, m, i))
            continue;
        struct queue *q = shard_queue(s, m, i, false);
        if (q && q->ready.n)
            return q;
    }
    return NULL;
}

static void park(struct shard *s, struct msg *m)
{
    int n = 0;
    for (int i = m->key_first; i < m->key_last; i++)
        n += key_is_mine(s, m, i);
    struct waiter *w = calloc(1, sizeof *w + (size_t)n * sizeof(struct wlink));
    if (!w)
        abort();
    tnode_init(&w->timer, TK_WAITER);
    w->m = m;
    w->nlinks = 0;
    for (int i = m->key_first; i < m->key_last; i++) {
        if (!key_is_mine(s, m, i))
            continue;
        struct queue *q = shard_queue(s, m, i, true);
        bool dup = false;
        for (int k = 0; k < w->nlinks; k++)
            dup |= w->links[k].q == q;
        if (dup)
            continue;
        w->links[w->nlinks].w = w;
        queue_wait_append(q, &w->links[w->nlinks]);
        w->nlinks++;
    }
    if (m->deadline) {
        w->timer.when = m->deadline;
        theap_add(&s->timers, &w->timer);
    }
    m->claim->waiters[s->id] = w;
}

void shard_bpop(struct shard *s, struct msg *m)
{
    if (m->bmode == BPOP_TRY) {
        struct queue *q = first_ready(s, m, m->key_first, m->key_last, true);
        if (q) {
            deliver(s, m, q);
            shard_queue_gc(s, q);
        } else {
            m->empty = true;
            shard_reply(s, m);
        }
        return;
    }
    /* BPOP_PARK */
    if (!claim_is_open(m->claim)) {
        msg_free(m);
        return;
    }
    struct queue *q = first_ready(s, m, m->key_first, m->key_last, false);
    if (q) {
        if (claim_take(m->claim)) {
            deliver(s, m, q);
            shard_queue_gc(s, q);
        } else {
            msg_free(m);
        }
        return;
    }
    park(s, m);
}

/* Serves waiters of queues that received jobs this turn, oldest waiter
 * first, while the queue has jobs. A queue being served keeps in_ready_list
 * set so that unlinking waiters never frees it under our feet. A job put
 * back meanwhile (MSG_RETURN) lists its queue again for another pass. */
static void serve_queue(struct shard *s, struct queue *q)
{
    while (q->ready.n && q->wait_head) {
        struct waiter *w = q->wait_head->w;
        if (!claim_take(w->m->claim)) {
            waiter_drop(s, w);
            continue;
        }
        deliver(s, waiter_remove(s, w), q);
    }
}

static void serve_ready(struct shard *s)
{
    while (s->ready_head) {
        struct queue *list = s->ready_head;
        s->ready_head = NULL;
        while (list) {
            struct queue *q = list;
            list = q->ready_next;
            q->ready_next = NULL;
            serve_queue(s, q);
            q->in_ready_list = false;
            shard_queue_gc(s, q);
        }
    }
}

/* ---------------------------------------------------------------- timers */

static void expire_waiter(struct shard *s, struct waiter *w)
{
    if (!claim_take(w->m->claim)) {
        waiter_drop(s, w);
        return;
    }
    struct msg *m = waiter_remove(s, w);
    resp_add_null_array(&m->out, m->proto);
    shard_reply(s, m);
}

static void rearm_timer(struct shard *s)
{
    struct tnode *t = theap_min(&s->timers);
    if (!t) {
        if (s->timer_at)
            event_del(s->timer_ev);
        s->timer_at = 0;
        return;
    }
    if (s->timer_at == t->when)
        return;
    int64_t delta = t->when - clock_mono_ms();
    if (delta < 0)
        delta = 0;
    struct timeval tv = { (time_t)(delta / 1000), (suseconds_t)((delta % 1000) * 1000) };
    event_add(s->timer_ev, &tv);
    s->timer_at = t->when;
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct shard *s = arg;
    s->timer_at = 0;
    int64_t now = clock_mono_ms();
    struct tnode *t;
    while ((t = theap_min(&s->timers)) && t->when <= now) {
        theap_remove(&s->timers, t);
        if (t->kind == TK_WAITER)
            expire_waiter(s, (struct waiter *)t);
    }
    shard_end_turn(s);
}

/* ----------------------------------------------------------------- turns */

static void handle_cancel(struct shard *s, struct msg *m)
{
    struct waiter *w = m->claim->waiters[s->id];
    if (w)
        waiter_drop(s, w);
    msg_free(m);
}

static void handle_return(struct shard *s, struct msg *m)
{
    struct queue *q = qtable_get(&s->queues, m->job_queue, strlen(m->job_queue));
    if (m->job_left)
        jobq_push_left(&q->ready, m->job);
    else
        jobq_push_right(&q->ready, m->job);
    q->popped_total--;
    m->job = NULL;
    log_debug("job returned to queue '%s' (its client disconnected)", q->name);
    shard_queue_changed(s, q);
    msg_free(m);
}

static void shard_end_turn(struct shard *s)
{
    serve_ready(s);
    /* The journal commits this turn's changes here, before any reply. */
    for (int i = 0; i < s->srv->nio; i++)
        if (s->replies[i].head)
            msg_batch_post(&s->replies[i], &s->srv->io[i].inbox);
    rearm_timer(s);
}

static void shard_drain(void *arg, struct msg *list)
{
    struct shard *s = arg;
    while (list) {
        struct msg *m = list;
        list = m->next;
        m->next = NULL;
        switch (m->type) {
        case MSG_CMD:
            s->commands++;
            m->cmd->shard(s, m);
            break;
        case MSG_CANCEL:
            handle_cancel(s, m);
            break;
        case MSG_RETURN:
            handle_return(s, m);
            break;
        case MSG_STOP:
            s->stopping = true;
            event_base_loopexit(s->base, NULL);
            msg_free(m);
            break;
        default:
            log_error("shard %d: unexpected message type %d", s->id, m->type);
            msg_free(m);
        }
    }
    shard_end_turn(s);
}

/* ------------------------------------------------------------- lifecycle */

int shard_init(struct shard *s, struct server *srv, int id)
{
    memset(s, 0, sizeof *s);
    s->id = id;
    s->srv = srv;
    qtable_init(&s->queues);
    theap_init(&s->timers);
    struct event_config *ec = event_config_new();
    event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
    s->base = event_base_new_with_config(ec);
    event_config_free(ec);
    if (!s->base)
        return -ENOMEM;
    s->timer_ev = evtimer_new(s->base, timer_cb, s);
    s->replies = calloc((size_t)srv->nio, sizeof *s->replies);
    if (!s->timer_ev || !s->replies)
        return -ENOMEM;
    return inbox_init(&s->inbox, s->base, shard_drain, s);
}

static void *shard_main(void *arg)
{
    struct shard *s = arg;
    char name[16];
    snprintf(name, sizeof name, "shard-%d", s->id);
    log_set_thread_name(name);
    event_base_dispatch(s->base);
    return NULL;
}

int shard_start(struct shard *s)
{
    return -pthread_create(&s->thread, NULL, shard_main, s);
}

void shard_join(struct shard *s)
{
    pthread_join(s->thread, NULL);
}

static void free_waiters_of(void *arg, struct queue *q)
{
    struct shard *s = arg;
    while (q->wait_head) {
        struct waiter *w = q->wait_head->w;
        waiter_unlink(s, w);
        msg_free(w->m);
        free(w);
    }
}

void shard_destroy(struct shard *s)
{
    s->stopping = true; /* no queue is collected while waiters are freed */
    if (s->queues.b) {
        qtable_each(&s->queues, free_waiters_of, s);
        qtable_free(&s->queues);
    }
    theap_free(&s->timers);
    inbox_discard(&s->inbox);
    inbox_destroy(&s->inbox);
    if (s->timer_ev)
        event_free(s->timer_ev);
    if (s->base)
        event_base_free(s->base);
    free(s->replies);
}
