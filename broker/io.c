/*
 * io.c - the I/O thread loop and its inbox (see io.h).
 *
 * Stop sequence: on MSG_STOP the thread stops parsing on every connection
 * (closing them once their in-flight replies are written), and leaves its
 * loop when no connection is left, or after a grace period.
 */
#include "io.h"

#include "clock.h"
#include "command.h"
#include "conn.h"
#include "log.h"
#include "msg.h"
#include "pubsub.h"
#include "context.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STOP_GRACE_MS 5000

static void stop_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct io_thread *io = arg;
    if (io->nconns)
        log_warn("I/O thread %d: %ld connection(s) still busy after %d ms; closing them",
                 io->id, io->nconns, STOP_GRACE_MS);
    while (io->conns)
        conn_close(io->conns, "server shutting down");
    io_leave(io);
}

static void begin_stop(struct io_thread *io)
{
    io->stopping = true;
    struct conn *c = io->conns;
    while (c) {
        struct conn *next = c->next;
        if (c->blocked)
            conn_close(c, "server shutting down");
        else
            conn_close_after_reply(c), conn_process(c);
        c = next;
    }
    struct timeval tv = { STOP_GRACE_MS / 1000, (STOP_GRACE_MS % 1000) * 1000 };
    io->stop_timer = evtimer_new(io->base, stop_timer_cb, io);
    event_add(io->stop_timer, &tv);
    conn_stop_when_idle(io);
}

static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    struct io_thread *io = arg;
    if (!io->stopping)
        conn_sweep(io);
}

/* --colocate yes: this thread's CPU time (its shard's work and its
 * clients') over the last period, for conn.c's placement of clients. */
static void load_cb(evutil_socket_t fd, short what, void *arg)
{
    struct io_thread *io = arg;
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) < 0)
        return;
    int64_t cpu = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000, now = clock_mono_us();
    if (io->load_at && now > io->load_at) {
        int64_t pm = (cpu - io->load_cpu) * 1000 / (now - io->load_at);
        atomic_store_explicit(&io->srv->load[io->id].measured, (int)(pm > 1000 ? 1000 : pm), memory_order_relaxed);
    }
    io->load_cpu = cpu;
    io->load_at = now;
}

static void io_drain(void *arg, struct msg *list)
{
    struct io_thread *io = arg;
    while (list) {
        struct msg *m = list;
        list = m->next;
        m->next = NULL;
        switch (m->type) {
        case MSG_CONN:
            if (m->conn) /* moved here by another I/O thread (--colocate yes) */
                conn_adopt(io, m->conn, m->fd);
            else if (io->stopping)
                close(m->fd);
            else
                conn_new(io, m->fd, m->tls);
            msg_free(m);
            break;
        case MSG_REPLY:
            conn_on_reply(m->conn, m);
            break;
        case MSG_CMD:
            /* A request gathered from every I/O thread (e.g. CLIENT LIST). */
            m->cmd->peer(io, m);
            m->type = MSG_REPLY;
            outbox_add(&io->out, ctx_io(io->srv, m->origin), m);
            break;
        case MSG_PUBLISH:
            pubsub_deliver(io, m);
            msg_free(m);
            break;
        case MSG_STOP:
            msg_free(m);
            begin_stop(io);
            break;
        default:
            log_error("I/O thread %d: unexpected message type %d", io->id, m->type);
            msg_free(m);
        }
    }
    conn_flush_dirty(io);
    outbox_flush(&io->out);
}

void io_serve_busy(void *arg)
{
    struct io_thread *io = arg;
    int64_t now = clock_mono_ms();
    if (now - io->busy_served < IO_BUSY_SERVE_MS || !ctx_script_busy(io->srv, io->id))
        return;
    io->busy_served = now;
    struct msg *list = inbox_take(&io->inbox); /* the inbox's events find it empty later */
    if (list)
        io_drain(io, list);
    conn_serve_readable(io);
    outbox_flush(&io->out);
}

int io_init(struct io_thread *io, struct server *srv, int id, struct event_base *shared, int home)
{
    memset(io, 0, sizeof *io);
    io->id = id;
    io->srv = srv;
    io->conn_gone = pubsub_conn_gone;
    io->colocated = shared != NULL;
    if (shared) {
        io->base = shared;
        if (sem_init(&io->left_sem, 0, 0) < 0)
            return -errno;
    } else {
        struct event_config *ec = event_config_new();
        event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
        io->base = event_base_new_with_config(ec);
        event_config_free(ec);
    }
    if (!io->base || outbox_init(&io->out, srv->inboxes, ctx_inboxes(srv)) < 0)
        return -ENOMEM;
    struct timeval second = { 1, 0 };
    io->sweep_timer = event_new(io->base, -1, EV_PERSIST, sweep_cb, io);
    if (!io->sweep_timer || event_add(io->sweep_timer, &second) < 0)
        return -ENOMEM;
    if (io->colocated && srv->nio > 1) {
        struct timeval period = { 0, LOAD_PERIOD_MS * 1000 };
        io->load_timer = event_new(io->base, -1, EV_PERSIST, load_cb, io);
        if (!io->load_timer || event_add(io->load_timer, &period) < 0)
            return -ENOMEM;
    }
    int rc = inbox_init(&io->inbox, io->base, io_drain, io);
    if (rc == 0) {
        inbox_set_home(&io->inbox, home);
        ctx_register(srv, ctx_io(srv, id), &io->inbox);
    }
    return rc;
}

static void *io_main(void *arg)
{
    struct io_thread *io = arg;
    char name[16];
    snprintf(name, sizeof name, "io-%d", io->id);
    log_set_thread_name(name);
    inbox_enter(io->inbox.home);
    event_base_dispatch(io->base);
    return NULL;
}

int io_start(struct io_thread *io)
{
    if (io->colocated)
        return 0; /* the shard's thread runs the loop */
    return -pthread_create(&io->thread, NULL, io_main, io);
}

void io_join(struct io_thread *io)
{
    if (!io->colocated) {
        pthread_join(io->thread, NULL);
        return;
    }
    while (sem_wait(&io->left_sem) < 0 && errno == EINTR)
        ;
}

void io_destroy(struct io_thread *io)
{
    for (struct msg *m = inbox_take(&io->inbox), *next; m; m = next) {
        next = m->next;
        if (m->type == MSG_CONN && m->conn) /* moved here after this thread had stopped */
            conn_drop_moved(m->conn, m->fd);
        msg_free(m);
    }
    if (io->stop_timer)
        event_free(io->stop_timer);
    if (io->sweep_timer)
        event_free(io->sweep_timer);
    if (io->load_timer)
        event_free(io->load_timer);
    inbox_destroy(&io->inbox);
    if (io->base && !io->colocated)
        event_base_free(io->base);
    if (io->colocated)
        sem_destroy(&io->left_sem);
    outbox_destroy(&io->out);
}
