/*
 * queue.c - see queue.h.
 */
#include "queue.h"

#include "config.h"
#include "hash.h"
#include "resp.h"
#include "slot.h"
#include "xalloc.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------ jobs */

struct job *job_new(uint64_t id, const void *p, size_t n)
{
    struct job *j = xcalloc(1, sizeof *j);
    tnode_init(&j->timer, 0);
    j->id = id;
    j->len = (uint32_t)n;
    j->payload = xmalloc(n + 1);
    memcpy(j->payload, p, n);
    j->payload[n] = '\0';
    return j;
}

struct job *job_new_owned(uint64_t id, char *p, size_t n)
{
    struct job *j = xcalloc(1, sizeof *j);
    tnode_init(&j->timer, 0);
    j->id = id;
    j->len = (uint32_t)n;
    if (n > 1024) {
        /* The parser may have grown the buffer past n: give the rest back. */
        char *fit = realloc(p, n + 1);
        p = fit ? fit : p;
    }
    j->payload = p;
    return j;
}

void job_free(struct job *j)
{
    if (!j)
        return;
    free(j->payload);
    free(j->last_error);
    free(j->unique);
    free(j->result);
    free(j->progress);
    free(j->group);
    free(j->holder);
    free(j->history);
    free(j);
}

void job_set_str(char **field, const char *s, size_t n)
{
    free(*field);
    *field = NULL;
    if (s) {
        *field = xmalloc(n + 1);
        memcpy(*field, s, n);
        (*field)[n] = '\0';
    }
}

char *job_holder_format(const char *name, const char *addr, uint64_t conn_id)
{
    char buf[256];
    int n = snprintf(buf, sizeof buf, "name=%.128s addr=%.64s id=%" PRIu64, name ? name : "", addr ? addr : "",
                     conn_id);
    for (int i = 5; i < n && strncmp(buf + i, " addr=", 6) != 0; i++)
        if ((unsigned char)buf[i] <= ' ')
            buf[i] = '_';
    char *s = xmalloc((size_t)n + 1);
    memcpy(s, buf, (size_t)n + 1);
    return s;
}

/* Copies n bytes of s to out, tabs, newlines and other control bytes as spaces. */
static size_t put_clean(char *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (unsigned char)s[i] < ' ' ? ' ' : s[i];
    return n;
}

void job_history_add(struct job *j, int64_t at, const char *err, size_t errlen)
{
    const char *h = j->history ? j->history : "";
    size_t lines = 0;
    for (const char *p = h; *p; p++)
        lines += *p == '\n';
    if (*h && h[strlen(h) - 1] != '\n')
        lines++;
    while (lines >= JOB_HISTORY_MAX) { /* drop the oldest */
        const char *nl = strchr(h, '\n');
        h = nl ? nl + 1 : h + strlen(h);
        lines--;
    }
    if (errlen > 1024)
        errlen = 1024;
    const char *who = j->holder ? j->holder : "";
    size_t keep = strlen(h), wl = strlen(who);
    char *out = xmalloc(keep + wl + errlen + 64);
    size_t n = 0;
    memcpy(out, h, keep);
    n += keep;
    if (n && out[n - 1] != '\n')
        out[n++] = '\n';
    n += (size_t)sprintf(out + n, "%u\t%lld\t", j->attempt, (long long)at);
    n += put_clean(out + n, who, wl);
    out[n++] = '\t';
    n += put_clean(out + n, err ? err : "", err ? errlen : 0);
    out[n] = '\0';
    free(j->history);
    j->history = out;
}

const char *job_history_next(const char *p, struct job_attempt *a)
{
    if (!p || !*p)
        return NULL;
    const char *end = strchr(p, '\n');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    const char *f[4] = { p, "", "", "" };
    size_t fl[4] = { len, 0, 0, 0 };
    for (int k = 1; k < 4; k++) {
        const char *tab = memchr(f[k - 1], '\t', fl[k - 1]);
        if (!tab)
            break;
        f[k] = tab + 1;
        fl[k] = (size_t)(p + len - f[k]);
        fl[k - 1] = (size_t)(tab - f[k - 1]);
    }
    a->attempt = strtoll(f[0], NULL, 10);
    a->time = strtoll(f[1], NULL, 10);
    a->worker = f[2];
    a->worker_len = fl[2];
    a->error = f[3];
    a->error_len = fl[3];
    return end ? end + 1 : p + len;
}

size_t job_history_count(const struct job *j)
{
    size_t n = 0;
    struct job_attempt a;
    for (const char *p = j->history; (p = job_history_next(p, &a));)
        n++;
    return n;
}

static const char *const state_names[JOB_NSTATES] = { "ready", "reserved", "delayed", "done", "dead", "expired" };

const char *job_state_name(int state)
{
    return state >= 0 && state < JOB_NSTATES ? state_names[state] : "unknown";
}

int job_state_parse(const char *s, size_t n)
{
    for (int i = 0; i < JOB_NSTATES; i++)
        if (strlen(state_names[i]) == n && strncasecmp(s, state_names[i], n) == 0)
            return i;
    return -1;
}

void job_id_format(uint64_t id, char out[JOB_ID_HEX + 1])
{
    snprintf(out, JOB_ID_HEX + 1, "%016" PRIx64, id);
}

static bool id_tags;
static _Atomic int id_origin = -1;

void job_id_tagging(bool on)
{
    id_tags = on;
}

void job_id_origin_set(int group)
{
    atomic_store_explicit(&id_origin, group >= 0 ? group & 0x3f : -1, memory_order_relaxed);
}

int job_id_origin(void)
{
    return atomic_load_explicit(&id_origin, memory_order_relaxed);
}

/* The "{tag}" of j's slot that starts its id and receipts in cluster
 * mode ("" otherwise); returns its length (at most SLOT_TAG_MAX + 2). */
static size_t job_id_tag(const struct job *j, char *out)
{
    size_t n = 0;
    if (id_tags) {
        char tag[SLOT_TAG_MAX + 1];
        size_t tl = slot_tag(slot_of(j->q->name, j->q->namelen), tag);
        out[n++] = '{';
        memcpy(out + n, tag, tl);
        n += tl;
        out[n++] = '}';
    }
    out[n] = '\0';
    return n;
}

size_t job_id_text(const struct job *j, char out[JOB_ID_TEXT])
{
    size_t n = job_id_tag(j, out);
    job_id_format(j->id, out + n);
    return n + JOB_ID_HEX;
}

void job_receipt_text(const struct job *j, char out[JOB_RECEIPT_TEXT])
{
    job_receipt_format(j, out + job_id_tag(j, out));
}

/* Skips a cluster-mode "{tag}" prefix of s (1 to SLOT_TAG_MAX bytes
 * between the braces); false when s starts with a brace but no such tag. */
static bool skip_tag(const char **s, size_t *n)
{
    if (*n <= 2 || (*s)[0] != '{')
        return true;
    const char *close = memchr(*s + 1, '}', *n - 1 < SLOT_TAG_MAX + 1 ? *n - 1 : SLOT_TAG_MAX + 1);
    if (!close || close == *s + 1)
        return false;
    *n -= (size_t)(close + 1 - *s);
    *s = close + 1;
    return true;
}

/* Reads n hex digits of s into *v. */
static bool hex_digits(const char *s, size_t n, uint64_t *v)
{
    *v = 0;
    for (size_t i = 0; i < n; i++) {
        int h = resp_hex_value(s[i]);
        if (h < 0)
            return false;
        *v = *v << 4 | (uint64_t)h;
    }
    return true;
}

void job_receipt_format(const struct job *j, char out[JOB_RECEIPT_MAX])
{
    snprintf(out, JOB_RECEIPT_MAX, "%016" PRIx64 "-%u-%08" PRIx32, j->id, j->attempt, j->token);
}

bool job_receipt_parse(const char *s, size_t n, uint64_t *id, uint32_t *attempt, uint32_t *token)
{
    uint64_t v, t = 0;
    if (!skip_tag(&s, &n) || n < JOB_ID_HEX || !hex_digits(s, JOB_ID_HEX, &v))
        return false;
    /* the token: the last 9 bytes "-xxxxxxxx" of a receipt with one */
    size_t end = n;
    if (n > JOB_ID_HEX + 10 && s[n - 9] == '-') {
        if (!hex_digits(s + n - 8, 8, &t) || t == 0)
            return false;
        end = n - 9;
    }
    uint64_t acc = 0;
    if (end > JOB_ID_HEX) {
        if (s[JOB_ID_HEX] != '-' || end == JOB_ID_HEX + 1 || end > JOB_ID_HEX + 11)
            return false;
        for (size_t i = JOB_ID_HEX + 1; i < end; i++) {
            if (s[i] < '0' || s[i] > '9')
                return false;
            acc = acc * 10 + (uint64_t)(s[i] - '0');
        }
        if (acc == 0 || acc > UINT32_MAX)
            return false;
    }
    *id = v;
    *attempt = (uint32_t)acc;
    *token = (uint32_t)t;
    return true;
}

bool job_id_parse(const char *s, size_t n, uint64_t *id, uint32_t *attempt)
{
    uint32_t token;
    return job_receipt_parse(s, n, id, attempt, &token);
}

/* ----------------------------------------------------------------- lists */

void jlist_push_left(struct jlist *l, struct job *j)
{
    j->prev = NULL;
    j->next = l->head;
    if (l->head)
        l->head->prev = j;
    else
        l->tail = j;
    l->head = j;
    l->n++;
}

void jlist_push_right(struct jlist *l, struct job *j)
{
    j->next = NULL;
    j->prev = l->tail;
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
    l->n++;
}

void jlist_unlink(struct jlist *l, struct job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        l->head = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        l->tail = j->prev;
    j->prev = j->next = NULL;
    l->n--;
}

/* -------------------------------------------------------------- settings */

enum qopt_kind { QO_NUM, QO_PAYLOAD, QO_RATE, QO_FIELD };

struct qopt {
    const char *name;
    size_t off;
    int64_t min, max;
    const char *help;
    int kind;
};

#define QOFF(f) offsetof(struct qconf, f)
static const struct qopt qopts[] = {
    { "retries", QOFF(retries), 0, 1000, "a whole number from 0 to 1000", QO_NUM },
    { "backoff", QOFF(backoff), 0, 86400000LL * 30, "milliseconds, from 0 to 30 days", QO_NUM },
    { "backoff-max", QOFF(backoff_max), 0, 86400000LL * 30, "milliseconds, from 0 to 30 days", QO_NUM },
    { "lease", QOFF(lease), 1, 86400000LL * 7, "milliseconds, from 1 to 7 days", QO_NUM },
    { "maxlen", QOFF(maxlen), 0, INT64_MAX, "a whole number, 0 for no limit", QO_NUM },
    { "payload", QOFF(payload), 0, 1, "json or raw", QO_PAYLOAD },
    { "retention", QOFF(retention), 0, 86400000LL * 365, "milliseconds, from 0 to 1 year", QO_NUM },
    { "retention-max", QOFF(retention_max), 0, 100000000, "a whole number from 0 to 100000000", QO_NUM },
    { "rate", QOFF(rate), 0, 0, NULL, QO_RATE },
    { "concurrency", QOFF(concurrency), 0, 1000000, "a whole number from 0 (no limit) to 1000000", QO_NUM },
    { "expires", QOFF(expires), 0, 86400000LL * 365, "milliseconds from 0 (never) to 1 year", QO_NUM },
    { "group-rate", QOFF(group_rate), 0, 0, NULL, QO_RATE },
    { "group-concurrency", QOFF(group_concurrency), 0, 1000000, "a whole number from 0 (no limit) to 1000000", QO_NUM },
    { "group-from", QOFF(group_from), 0, 63,
      "a JSON field name of 1 to 63 letters, digits, '_', '-' or '.' (\"\" or - for none)", QO_FIELD },
};
#define NQOPTS (sizeof qopts / sizeof qopts[0])

void qconf_defaults(struct qconf *c, int payload_mode)
{
    c->retries = 25;
    c->backoff = 15000;
    c->backoff_max = 3600000;
    c->lease = 30000;
    c->maxlen = 0;
    c->payload = payload_mode;
    c->retention = 3600000;
    c->retention_max = 10000;
    c->rate = (struct rate){ 0, 0 };
    c->concurrency = 0;
    c->expires = 0;
    c->group_rate = (struct rate){ 0, 0 };
    c->group_concurrency = 0;
    memset(c->group_from, 0, sizeof c->group_from);
}

static const struct qopt *qopt_find(const char *name, size_t n)
{
    for (size_t i = 0; i < NQOPTS; i++)
        if (strlen(qopts[i].name) == n && strncasecmp(qopts[i].name, name, n) == 0)
            return &qopts[i];
    return NULL;
}

size_t qconf_count(void)
{
    return NQOPTS;
}

const char *qconf_name(size_t i)
{
    return i < NQOPTS ? qopts[i].name : NULL;
}

/* group-from: a JSON field name, or "" / "-" for none. */
static int field_set(char *dst, const char *val, size_t vlen, const struct qopt *o, const char **why)
{
    if (vlen == 1 && val[0] == '-')
        vlen = 0;
    if (vlen > (size_t)o->max) {
        *why = o->help;
        return -EINVAL;
    }
    for (size_t i = 0; i < vlen; i++) {
        char ch = val[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
              ch == '-' || ch == '.')) {
            *why = o->help;
            return -EINVAL;
        }
    }
    memset(dst, 0, 64);
    memcpy(dst, val, vlen);
    return 0;
}

int qconf_set(struct qconf *c, const char *name, size_t nlen, const char *val, size_t vlen,
              const char **why)
{
    const struct qopt *o = qopt_find(name, nlen);
    if (!o) {
        *why = QCONF_NAMES_HELP;
        return -EINVAL;
    }
    int64_t v;
    if (o->kind == QO_RATE)
        return rate_parse(val, vlen, (struct rate *)((char *)c + o->off), why);
    if (o->kind == QO_FIELD)
        return field_set(c->group_from, val, vlen, o, why);
    if (o->off == QOFF(payload)) {
        if (vlen == 4 && strncasecmp(val, "json", 4) == 0)
            v = PAYLOAD_JSON;
        else if (vlen == 3 && strncasecmp(val, "raw", 3) == 0)
            v = PAYLOAD_RAW;
        else {
            *why = o->help;
            return -EINVAL;
        }
    } else {
        char buf[32];
        if (vlen == 0 || vlen >= sizeof buf) {
            *why = o->help;
            return -EINVAL;
        }
        memcpy(buf, val, vlen);
        buf[vlen] = '\0';
        char *end;
        errno = 0;
        long long l = strtoll(buf, &end, 10);
        if (errno || *end || l < o->min || l > o->max) {
            *why = o->help;
            return -EINVAL;
        }
        v = l;
    }
    *(int64_t *)((char *)c + o->off) = v;
    return 0;
}

static int render(const struct qopt *o, const struct qconf *c, char *buf, size_t cap)
{
    if (o->kind == QO_RATE)
        return rate_format((const struct rate *)((const char *)c + o->off), buf, cap);
    if (o->kind == QO_FIELD)
        return snprintf(buf, cap, "%s", c->group_from);
    int64_t v = *(const int64_t *)((const char *)c + o->off);
    if (o->off == QOFF(payload))
        return snprintf(buf, cap, "%s", v == PAYLOAD_RAW ? "raw" : "json");
    return snprintf(buf, cap, "%lld", (long long)v);
}

int qconf_get(const struct qconf *c, const char *name, size_t nlen, char *buf, size_t cap)
{
    const struct qopt *o = qopt_find(name, nlen);
    if (!o)
        return -EINVAL;
    render(o, c, buf, cap);
    return 0;
}

void qconf_format(const struct qconf *c, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < NQOPTS && n < cap; i++) {
        if (qopts[i].kind == QO_FIELD && !c->group_from[0])
            continue; /* an empty value would not parse back */
        n += (size_t)snprintf(buf + n, cap - n, "%s%s ", i ? " " : "", qopts[i].name);
        if (n < cap)
            n += (size_t)render(&qopts[i], c, buf + n, cap - n);
    }
}

void qconf_parse(struct qconf *c, const char *text)
{
    const char *p = text;
    while (*p) {
        while (*p == ' ')
            p++;
        const char *name = p;
        while (*p && *p != ' ')
            p++;
        size_t nlen = (size_t)(p - name);
        while (*p == ' ')
            p++;
        const char *val = p;
        while (*p && *p != ' ')
            p++;
        const char *why;
        if (nlen)
            qconf_set(c, name, nlen, val, (size_t)(p - val), &why);
    }
}

int64_t qconf_backoff(const struct qconf *c, uint32_t attempt, double rnd)
{
    if (attempt < 1)
        attempt = 1;
    double d = (double)c->backoff * pow(2.0, (double)(attempt - 1));
    if (d > (double)c->backoff_max)
        d = (double)c->backoff_max;
    d *= 0.8 + 0.4 * rnd; /* +-20 % jitter so retries of a burst spread out */
    if (d > (double)c->backoff_max)
        d = (double)c->backoff_max;
    return (int64_t)d;
}

/* --------------------------------------------------------------- waiters */

void queue_wait_append(struct queue *q, struct wlink *l)
{
    l->q = q;
    l->next = NULL;
    l->prev = q->wait_tail;
    if (q->wait_tail)
        q->wait_tail->next = l;
    else
        q->wait_head = l;
    q->wait_tail = l;
    q->nwaiters++;
}

void queue_wait_unlink(struct wlink *l)
{
    struct queue *q = l->q;
    if (!q)
        return;
    if (l->prev)
        l->prev->next = l->next;
    else
        q->wait_head = l->next;
    if (l->next)
        l->next->prev = l->prev;
    else
        q->wait_tail = l->prev;
    q->nwaiters--;
    l->prev = l->next = NULL;
    l->q = NULL;
}

/* ----------------------------------------------------------------- queue */

struct jlist *queue_list(struct queue *q, int state)
{
    switch (state) {
    case JOB_DELAYED:
        return &q->delayed;
    case JOB_RESERVED:
        return &q->reserved;
    case JOB_DONE:
        return &q->done;
    case JOB_DEAD:
        return &q->dead;
    case JOB_EXPIRED:
        return &q->expired;
    default:
        return NULL;
    }
}

size_t queue_count(const struct queue *q, int state)
{
    if (state == JOB_READY)
        return q->nready;
    return queue_list((struct queue *)q, state)->n;
}

size_t queue_unfinished(const struct queue *q)
{
    return q->nready + q->delayed.n + q->reserved.n;
}

bool queue_is_idle(const struct queue *q)
{
    return q->nready == 0 && q->delayed.n == 0 && q->reserved.n == 0 && q->done.n == 0 &&
           q->dead.n == 0 && q->expired.n == 0 && q->nwaiters == 0 && !q->conf_custom && !q->paused &&
           q->groups.n == 0 && !tnode_armed(&q->flow_timer);
}

/* The level of priority pri, created if missing (levels stay sorted). */
static struct plevel *level_get(struct queue *q, int16_t pri)
{
    int lo = 0, hi = q->nlevels;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (q->levels[mid].pri == pri)
            return &q->levels[mid];
        if (q->levels[mid].pri < pri)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (q->nlevels == q->caplevels) {
        q->caplevels = q->caplevels ? q->caplevels * 2 : 2;
        struct plevel *nl = realloc(q->levels, (size_t)q->caplevels * sizeof *nl);
        if (!nl)
            abort();
        q->levels = nl;
    }
    memmove(&q->levels[lo + 1], &q->levels[lo], (size_t)(q->nlevels - lo) * sizeof *q->levels);
    q->nlevels++;
    memset(&q->levels[lo], 0, sizeof q->levels[lo]);
    q->levels[lo].pri = pri;
    return &q->levels[lo];
}

static struct plevel *level_find(const struct queue *q, int16_t pri)
{
    for (int i = 0; i < q->nlevels; i++)
        if (q->levels[i].pri == pri)
            return &q->levels[i];
    return NULL;
}

/* Empty levels other than priority 0 are dropped so scans stay short. */
static void level_trim(struct queue *q, struct plevel *lv)
{
    if (lv->l.n || lv->pri == 0)
        return;
    int i = (int)(lv - q->levels);
    memmove(&q->levels[i], &q->levels[i + 1], (size_t)(q->nlevels - i - 1) * sizeof *q->levels);
    q->nlevels--;
}

void queue_ready_add(struct queue *q, struct job *j, bool left)
{
    struct plevel *lv = level_get(q, j->priority);
    if (q->nready == 0) {
        j->pos = 0;
        q->pos_lo = q->pos_hi = 0;
    } else if (left) {
        j->pos = --q->pos_lo;
    } else {
        j->pos = ++q->pos_hi;
    }
    if (left)
        jlist_push_left(&lv->l, j);
    else
        jlist_push_right(&lv->l, j);
    j->state = JOB_READY;
    q->nready++;
}

void queue_ready_insert_pos(struct queue *q, struct job *j)
{
    struct plevel *lv = level_get(q, j->priority);
    /* Recovery loads jobs in pos order, so this is an append in practice. */
    struct job *after = lv->l.tail;
    while (after && after->pos > j->pos)
        after = after->prev;
    if (!after) {
        jlist_push_left(&lv->l, j);
    } else if (after == lv->l.tail) {
        jlist_push_right(&lv->l, j);
    } else {
        j->prev = after;
        j->next = after->next;
        after->next->prev = j;
        after->next = j;
        lv->l.n++;
    }
    if (q->nready == 0)
        q->pos_lo = q->pos_hi = j->pos;
    if (j->pos < q->pos_lo)
        q->pos_lo = j->pos;
    if (j->pos > q->pos_hi)
        q->pos_hi = j->pos;
    j->state = JOB_READY;
    q->nready++;
}

struct job *queue_ready_peek(const struct queue *q, bool left)
{
    if (q->nready == 0)
        return NULL;
    if (left) {
        for (int i = 0; i < q->nlevels; i++)
            if (q->levels[i].l.n)
                return q->levels[i].l.head;
    } else {
        for (int i = q->nlevels - 1; i >= 0; i--)
            if (q->levels[i].l.n)
                return q->levels[i].l.tail;
    }
    return NULL;
}

void queue_ready_remove(struct queue *q, struct job *j)
{
    struct plevel *lv = level_find(q, j->priority);
    jlist_unlink(&lv->l, j);
    q->nready--;
    level_trim(q, lv);
    if (q->nready == 0)
        q->pos_lo = q->pos_hi = 0;
}

struct job *queue_ready_at(const struct queue *q, size_t i)
{
    if (i >= q->nready)
        return NULL;
    for (int k = 0; k < q->nlevels; k++) {
        const struct jlist *l = &q->levels[k].l;
        if (i >= l->n) {
            i -= l->n;
            continue;
        }
        struct job *j;
        if (i < l->n / 2) {
            j = l->head;
            while (i--)
                j = j->next;
        } else {
            j = l->tail;
            for (size_t back = l->n - 1 - i; back; back--)
                j = j->prev;
        }
        return j;
    }
    return NULL;
}

struct job *queue_ready_first_served(const struct queue *q)
{
    return queue_ready_peek(q, false);
}

struct job *queue_ready_next_served(const struct queue *q, const struct job *j)
{
    if (j->prev)
        return j->prev;
    for (int i = q->nlevels - 1; i >= 0; i--) {
        if (q->levels[i].pri >= j->priority)
            continue;
        if (q->levels[i].l.n)
            return q->levels[i].l.tail;
    }
    return NULL;
}

/* ------------------------------------------------------------ unique keys */

struct ustr {
    struct ustr *next;
    struct job *job;
};

static size_t ubucket(const struct queue *q, const char *key, size_t len)
{
    return (size_t)hash_bytes(key, len) & (q->nub - 1);
}

struct job *queue_unique_find(const struct queue *q, const char *key, size_t len)
{
    if (!q->nunique)
        return NULL;
    for (struct ustr *u = q->ubuckets[ubucket(q, key, len)]; u; u = u->next)
        if (strlen(u->job->unique) == len && memcmp(u->job->unique, key, len) == 0)
            return u->job;
    return NULL;
}

void queue_unique_add(struct queue *q, struct job *j)
{
    if (!q->ubuckets) {
        q->nub = 64;
        q->ubuckets = xcalloc(q->nub, sizeof *q->ubuckets);
    }
    if (q->nunique >= q->nub * 2) {
        size_t onb = q->nub;
        struct ustr **ob = q->ubuckets;
        q->nub *= 4;
        q->ubuckets = xcalloc(q->nub, sizeof *q->ubuckets);
        for (size_t i = 0; i < onb; i++) {
            struct ustr *u = ob[i];
            while (u) {
                struct ustr *next = u->next;
                size_t k = ubucket(q, u->job->unique, strlen(u->job->unique));
                u->next = q->ubuckets[k];
                q->ubuckets[k] = u;
                u = next;
            }
        }
        free(ob);
    }
    struct ustr *u = xmalloc(sizeof *u);
    u->job = j;
    size_t k = ubucket(q, j->unique, strlen(j->unique));
    u->next = q->ubuckets[k];
    q->ubuckets[k] = u;
    q->nunique++;
}

void queue_unique_remove(struct queue *q, struct job *j)
{
    if (!j->unique || !q->nunique)
        return;
    struct ustr **pp = &q->ubuckets[ubucket(q, j->unique, strlen(j->unique))];
    for (; *pp; pp = &(*pp)->next) {
        if ((*pp)->job == j) {
            struct ustr *u = *pp;
            *pp = u->next;
            free(u);
            q->nunique--;
            return;
        }
    }
}

/* ----------------------------------------------------------------- table */

void qtable_init(struct qtable *t)
{
    t->nb = 64;
    t->n = 0;
    t->b = xcalloc(t->nb, sizeof *t->b);
}

static void jlist_free_all(struct jlist *l)
{
    struct job *j = l->head;
    while (j) {
        struct job *next = j->next;
        job_free(j);
        j = next;
    }
    memset(l, 0, sizeof *l);
}

void queue_clear_jobs(struct queue *q)
{
    for (int i = 0; i < q->nlevels; i++)
        jlist_free_all(&q->levels[i].l);
    q->nlevels = 0;
    q->nready = 0;
    q->pos_lo = q->pos_hi = 0;
    level_get(q, 0);
    jlist_free_all(&q->delayed);
    jlist_free_all(&q->reserved);
    jlist_free_all(&q->done);
    jlist_free_all(&q->dead);
    jlist_free_all(&q->expired);
    groups_clear(&q->groups); /* the rate limiter's state stays: deliveries made stay made */
    for (size_t i = 0; i < q->nub; i++) {
        struct ustr *u = q->ubuckets[i];
        while (u) {
            struct ustr *next = u->next;
            free(u);
            u = next;
        }
        q->ubuckets[i] = NULL;
    }
    q->nunique = 0;
}

static void queue_free(struct queue *q)
{
    queue_clear_jobs(q);
    rate_state_free(&q->rate_lim);
    free(q->levels);
    free(q->ubuckets);
    free(q->name);
    free(q);
}

void qtable_free(struct qtable *t)
{
    for (size_t i = 0; i < t->nb; i++) {
        struct queue *q = t->b[i];
        while (q) {
            struct queue *next = q->hnext;
            queue_free(q);
            q = next;
        }
    }
    free(t->b);
    t->b = NULL;
    t->nb = t->n = 0;
}

static size_t bucket(size_t nb, const char *name, size_t len)
{
    return (size_t)(hash_bytes(name, len) >> 7) & (nb - 1);
}

struct queue *qtable_find(const struct qtable *t, const char *name, size_t len)
{
    for (struct queue *q = t->b[bucket(t->nb, name, len)]; q; q = q->hnext)
        if (q->namelen == len && memcmp(q->name, name, len) == 0)
            return q;
    return NULL;
}

static void qtable_rehash(struct qtable *t)
{
    size_t onb = t->nb;
    struct queue **ob = t->b;
    t->nb = onb * 2;
    t->b = xcalloc(t->nb, sizeof *t->b);
    for (size_t i = 0; i < onb; i++) {
        struct queue *q = ob[i];
        while (q) {
            struct queue *next = q->hnext;
            size_t k = bucket(t->nb, q->name, q->namelen);
            q->hnext = t->b[k];
            t->b[k] = q;
            q = next;
        }
    }
    free(ob);
}

struct queue *qtable_get(struct qtable *t, const char *name, size_t len, const struct qconf *defaults)
{
    struct queue *q = qtable_find(t, name, len);
    if (q)
        return q;
    if (t->n >= t->nb)
        qtable_rehash(t);
    q = xcalloc(1, sizeof *q);
    q->name = xmalloc(len + 1);
    memcpy(q->name, name, len);
    q->name[len] = '\0';
    q->namelen = len;
    q->conf = *defaults;
    tnode_init(&q->flow_timer, 0);
    level_get(q, 0);
    size_t k = bucket(t->nb, name, len);
    q->hnext = t->b[k];
    t->b[k] = q;
    t->n++;
    return q;
}

bool qtable_maybe_free(struct qtable *t, struct queue *q)
{
    if (!queue_is_idle(q) || q->in_ready_list)
        return false;
    struct queue **pp = &t->b[bucket(t->nb, q->name, q->namelen)];
    while (*pp != q)
        pp = &(*pp)->hnext;
    *pp = q->hnext;
    t->n--;
    queue_free(q);
    return true;
}

void qtable_each(const struct qtable *t, void (*fn)(void *arg, struct queue *q), void *arg)
{
    for (size_t i = 0; i < t->nb; i++) {
        struct queue *q = t->b[i];
        while (q) {
            struct queue *next = q->hnext;
            fn(arg, q);
            q = next;
        }
    }
}

/* ------------------------------------------------------------- job table */

void jtable_init(struct jtable *t)
{
    memset(t, 0, sizeof *t);
    t->nb = 1024;
    t->b = xcalloc(t->nb, sizeof *t->b);
}

void jtable_free(struct jtable *t)
{
    free(t->b);
    free(t->old);
    memset(t, 0, sizeof *t);
}

static size_t jbucket(size_t nb, uint64_t id)
{
    uint64_t h = id * 0x9E3779B97F4A7C15ULL;
    return (size_t)(h >> 20) & (nb - 1);
}

#define JTABLE_STEP 64 /* old buckets moved per add or remove */

static void jtable_step(struct jtable *t)
{
    for (int k = 0; k < JTABLE_STEP && t->old; k++) {
        if (t->moved == t->oldnb) {
            free(t->old);
            t->old = NULL;
            break;
        }
        struct job *j = t->old[t->moved];
        t->old[t->moved++] = NULL;
        while (j) {
            struct job *next = j->hnext;
            size_t i = jbucket(t->nb, j->id);
            j->hnext = t->b[i];
            t->b[i] = j;
            j = next;
        }
    }
}

static struct job **jtable_slot(const struct jtable *t, uint64_t id)
{
    struct job **pp = &t->b[jbucket(t->nb, id)];
    for (; *pp; pp = &(*pp)->hnext)
        if ((*pp)->id == id)
            return pp;
    if (t->old) {
        pp = &t->old[jbucket(t->oldnb, id)];
        for (; *pp; pp = &(*pp)->hnext)
            if ((*pp)->id == id)
                return pp;
    }
    return NULL;
}

struct job *jtable_find(const struct jtable *t, uint64_t id)
{
    struct job **pp = jtable_slot(t, id);
    return pp ? *pp : NULL;
}

void jtable_add(struct jtable *t, struct job *j)
{
    if (!t->old && t->n >= t->nb) {
        t->old = t->b;
        t->oldnb = t->nb;
        t->moved = 0;
        t->nb *= 2;
        t->b = xcalloc(t->nb, sizeof *t->b);
    }
    jtable_step(t);
    size_t i = jbucket(t->nb, j->id);
    j->hnext = t->b[i];
    t->b[i] = j;
    t->n++;
}

void jtable_remove(struct jtable *t, struct job *j)
{
    jtable_step(t);
    struct job **pp = jtable_slot(t, j->id);
    if (pp && *pp == j) {
        *pp = j->hnext;
        j->hnext = NULL;
        t->n--;
    }
}

/* ---------------------------------------------------------------- ranges */

bool queue_range(size_t n, long long start, long long stop, size_t *from, size_t *to)
{
    long long len = (long long)n;
    if (start < 0)
        start += len;
    if (stop < 0)
        stop += len;
    if (start < 0)
        start = 0;
    if (start > stop || start >= len)
        return false;
    if (stop >= len)
        stop = len - 1;
    *from = (size_t)start;
    *to = (size_t)stop;
    return true;
}
