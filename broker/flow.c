/*
 * flow.c - see flow.h.
 */
#include "flow.h"

#include "groups.h"
#include "rate.h"
#include "payload.h"

#include <stddef.h>

static struct job *job_of(struct gnode *n)
{
    return (struct job *)(void *)((char *)n - offsetof(struct job, gn));
}

static struct group *group_of(struct queue *q, struct job *j)
{
    if (!j->gn.g)
        j->gn.g = groups_get(&q->groups, j->group ? j->group : "", j->grouplen);
    return j->gn.g;
}

void flow_ready_add(struct queue *q, struct job *j, bool left)
{
    queue_ready_add(q, j, left);
    groups_ready_add(&q->groups, group_of(q, j), &j->gn, j->priority, j->pos);
}

void flow_ready_insert_pos(struct queue *q, struct job *j)
{
    queue_ready_insert_pos(q, j);
    groups_ready_add(&q->groups, group_of(q, j), &j->gn, j->priority, j->pos);
}

void flow_ready_remove(struct queue *q, struct job *j)
{
    queue_ready_remove(q, j);
    groups_ready_remove(&q->groups, &j->gn);
}

void flow_hold(struct queue *q, struct job *j)
{
    group_of(q, j)->nreserved++;
}

void flow_unhold(struct queue *q, struct job *j)
{
    if (j->gn.g && j->gn.g->nreserved)
        j->gn.g->nreserved--;
}

void flow_settle(struct queue *q, struct job *j, int64_t now_ms)
{
    if (j->gn.g)
        groups_drop(&q->groups, &j->gn, rate_busy_until_us(&q->conf.group_rate, &j->gn.g->lim), now_ms * 1000);
}

bool flow_limited(const struct queue *q)
{
    return rate_set(&q->conf.rate) || q->conf.concurrency || rate_set(&q->conf.group_rate) ||
           q->conf.group_concurrency;
}

static bool group_open(const struct queue *q, const struct group *g, int64_t now_ms)
{
    if (q->conf.group_concurrency && (int64_t)g->nreserved >= q->conf.group_concurrency)
        return false;
    return rate_allows(&q->conf.group_rate, &g->lim, now_ms);
}

struct job *flow_next(struct queue *q, bool left, int64_t now_ms, int64_t *wake_ms)
{
    *wake_ms = 0;
    if (q->nready == 0 || q->paused)
        return NULL;
    if (q->conf.concurrency && (int64_t)q->reserved.n >= q->conf.concurrency)
        return NULL;
    if (!rate_allows(&q->conf.rate, &q->rate_lim, now_ms)) {
        *wake_ms = rate_next_ms(&q->conf.rate, &q->rate_lim);
        return NULL;
    }
    struct gtable *t = &q->groups;
    if (t->nring == 1 && !q->conf.group_concurrency && !rate_set(&q->conf.group_rate))
        return queue_ready_peek(q, left); /* one group: the queue's own order */
    struct group *g = t->ring;
    for (size_t i = 0; i < t->nring; i++, g = g->rnext) {
        if (group_open(q, g, now_ms))
            return job_of(left ? g->tail : g->head);
        if (!rate_allows(&q->conf.group_rate, &g->lim, now_ms)) {
            int64_t at = rate_next_ms(&q->conf.group_rate, &g->lim);
            if (*wake_ms == 0 || at < *wake_ms)
                *wake_ms = at;
        }
    }
    return NULL;
}

void flow_took(struct queue *q, struct job *j, int64_t now_ms)
{
    rate_take(&q->conf.rate, &q->rate_lim, now_ms);
    struct group *g = j->gn.g;
    if (!g)
        return;
    rate_take(&q->conf.group_rate, &g->lim, now_ms);
    g->delivered++;
    groups_served(&q->groups, g);
}

int flow_group_from(const struct queue *q, const char *payload, size_t len, char *buf, size_t cap)
{
    if (!q->conf.group_from[0] || !payload)
        return -1;
    return payload_json_field(payload, len, q->conf.group_from, buf, cap);
}
