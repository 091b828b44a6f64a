/*
 * replica.c - the shards' journals replicated by Raft (replica.h).
 *
 * Threads: the Raft thread runs a libuv loop with the raft instance, its
 * TCP transport and the FSM (apply_entry); it alone calls libraft. A shard
 * thread hands it an entry through the submission list (mutex) and an
 * uv_async, and runs on: its slot holds the entry in flight, whose fate
 * the FSM (or the apply callback, on failure) writes there before it
 * wakes the shard with a message (cfg.apply); the shard reads it in
 * replica_poll. The FSM queues committed entries of other proposers for
 * their shard, which applies them at the start of its next turn
 * (replica_apply_pending); the Raft thread never waits for a shard.
 *
 * A leader's shard keeps one transaction open over several entries: the
 * ones the group committed (kept here, so a rollback can apply them
 * again), the one in flight, and the turns since; it commits it when the
 * group holds all of it (replica_commit).
 *
 * Entry: struct entry_head, then the SQLite changeset of the turn.
 */
#include "replica.h"

#include "cluster.h"
#include "journal.h"
#include "log.h"
#include "replica_snap.h"

#include <cjson/cJSON.h>
#include <raft.h>
#include <raft/uv.h>
#define SQLITE_ENABLE_SESSION 1
#define SQLITE_ENABLE_PREUPDATE_HOOK 1
#include <sqlite3.h>
#include <uv.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#define ENTRY_MAGIC 0x73706f6f6c723031ULL /* "spoolr01" */
#define TICK_MS 10
/* A leader's shard commits its journal at least this often: after this
 * many entries, or once its transaction is this old, it stops taking
 * turns until the entry in flight commits (replica_hold). */
#define TXN_ENTRIES 8
#define TXN_US 5000

struct entry_head {
    uint64_t magic;
    uint64_t nonce;  /* the proposing process (random at start) */
    uint64_t seq;    /* the proposing shard's turn number */
    uint32_t shard;
    uint32_t len;    /* of the changeset; the entry is padded to 8 bytes (libraft's log needs it) */
};

enum slot_state { SLOT_IDLE, SLOT_WAITING, SLOT_COMMITTED, SLOT_NOT_PROPOSED, SLOT_UNKNOWN };

struct shard_slot {
    sqlite3_session *sess;     /* on the shard's connection (shard thread) */
    struct inbound *in_head, *in_tail; /* committed entries for the shard to apply (replica_apply_pending) */
    int64_t applied;           /* index of the last entry the database holds */
    int64_t fsm_last;          /* index of the last entry of this shard the FSM saw (Raft thread) */
    bool applied_known;
    uint64_t seq;
    /* the entry in flight (under mu): its state, its index once committed,
     * its changeset (index 0) */
    enum slot_state state;
    uint64_t index;
    struct inbound *flight;
    int64_t flight_us;         /* when it was proposed */
    /* shard thread: this shard's committed entries in its open transaction */
    struct inbound *kept_head, *kept_tail;
    int txn_entries;
    int64_t txn_since_us;
};

struct snap_hold; /* a snapshot being restored, shared by its shards' inbound items */

struct inbound {
    struct inbound *next;
    uint64_t index;
    struct snap_hold *hold;    /* a snapshot's image of the shard's journal, not a changeset */
    struct snap_part part;
    int len;
    char cs[]; /* the changeset */
};

struct submission {
    struct submission *next;
    struct raft_apply req;
    struct raft_buffer buf;
    struct replica *r;
    int shard;
    uint64_t seq;
};

struct peer {
    unsigned id;
    char raft_addr[64], client_addr[64];
};

struct replica {
    struct replica_cfg cfg;
    char data_dir[4096], raft_dir[4200];
    struct peer peers[REPLICA_MAX_PEERS];
    int npeers;
    uint64_t nonce;
    pthread_t thread;
    uv_loop_t loop;
    uv_async_t async;
    uv_timer_t tick;
    struct raft raft;
    struct raft_io io;
    struct raft_uv_transport tr;    /* what raft_uv uses: tcp with TCP_NODELAY (below) */
    struct raft_uv_transport tcp;   /* libraft's TCP transport, wrapped by tr */
    int (*uv_start)(struct raft_io *, unsigned, raft_io_tick_cb, raft_io_recv_cb); /* raft_uv's, wrapped by heard_start */
    raft_io_recv_cb raft_recv;      /* libraft's, wrapped by heard_recv */
    int (*uv_send)(struct raft_io *, struct raft_io_send *, const struct raft_message *, raft_io_send_cb); /* raft_uv's, wrapped by guarded_send */
    int64_t heard_us[256];          /* Raft thread: mono_us of the last message from each node id (0: never) */
    raft_uv_accept_cb accept_cb;
    raft_uv_transport_close_cb close_cb;
    struct raft_fsm fsm;
    struct raft_barrier barrier;
    bool barrier_pending, closed, running, handles; /* handles: async and tick set up (replica_run) */
    _Atomic bool stopping;
    pthread_mutex_t mu;
    struct submission *subs; /* waiting for the Raft thread */
    struct shard_slot *slots;
    struct snap_taker *snap;  /* snapshots (replica_snap.h) */
    /* Membership (the "membership" section): what the Raft thread last saw,
     * for any thread, and the changes the I/O threads hand it. */
    pthread_mutex_t view_mu;
    struct replica_member view[REPLICA_MAX_PEERS];
    int nview;
    char leader_client[64];
    char change_status[300];
    struct raft_req *reqs;        /* under mu: requests for the Raft thread (the "requests" section) */
    pthread_cond_t change_cv;     /* with mu: a request some thread waits for was answered */
    struct raft_change change;    /* the one change libraft has in flight */
    bool change_busy;
    unsigned change_id;
    int change_op;
    int64_t change_catch_up_us;   /* mono_us when the node being added began to catch up (add_goes_on) */
    _Atomic uint64_t role_epoch; /* role in the low 2 bits, the count of role changes above: read as one */
    _Atomic unsigned leader_id;
    _Atomic uint64_t applied_count, proposed_count, proposed_bytes, applied_index, queued_count;
    _Atomic uint64_t committed_count, commit_wait_us, journal_commits;
    /* Leadership transfer (the "transfer" section): the request being
     * served (Raft thread), libraft's request, and the flag that stops
     * proposals while the entries in flight settle. */
    struct change_req *xfer_q;
    struct raft_transfer xfer;
    unsigned xfer_target;
    int xfer_phase;
    int64_t xfer_drain_until_us, xfer_give_up_us, xfer_over_us;
    uint64_t xfer_match, xfer_commit; /* the target's match index and the commit index when it was asked */
    _Atomic bool handing_over;
    /* The slot map's entries (the "slot map" section) */
    struct cluster *cl;           /* NULL outside cluster mode */
    struct map_req *map_q;        /* Raft thread: the map entry of this leader in flight, or NULL */
    bool map_busy;                /* Raft thread: a map entry of this leader is in flight */
    uint64_t map_busy_epoch;
    char *map_snap;               /* the map as of the snapshot being taken (JSON) */
};

/* ---------------------------------------------------------------- peers */

static int parse_peer(struct replica *r, const char *item, size_t len, char *err, size_t cap)
{
    char buf[200];
    if (len >= sizeof buf || r->npeers == REPLICA_MAX_PEERS) {
        snprintf(err, cap, "--replica-peers: at most %d members of up to %zu characters each", REPLICA_MAX_PEERS,
                 sizeof buf - 1);
        return -EINVAL;
    }
    memcpy(buf, item, len);
    buf[len] = 0;
    struct peer *p = &r->peers[r->npeers];
    char *eq = strchr(buf, '='), *slash = eq ? strchr(eq, '/') : NULL;
    if (!eq || !slash || atoi(buf) <= 0 || eq[1] == '/' || !slash[1] || strlen(eq) > sizeof p->raft_addr) {
        snprintf(err, cap, "--replica-peers: member '%s' is not ID=RAFTHOST:PORT/HOST:PORT (e.g. "
                 "1=127.0.0.1:17001/127.0.0.1:7001)", buf);
        return -EINVAL;
    }
    *slash = 0;
    p->id = (unsigned)atoi(buf);
    snprintf(p->raft_addr, sizeof p->raft_addr, "%s", eq + 1);
    snprintf(p->client_addr, sizeof p->client_addr, "%s", slash + 1);
    for (int i = 0; i < r->npeers; i++)
        if (r->peers[i].id == p->id) {
            snprintf(err, cap, "--replica-peers: member id %u appears twice", p->id);
            return -EINVAL;
        }
    r->npeers++;
    return 0;
}

static int parse_peers(struct replica *r, char *err, size_t cap)
{
    const char *s = r->cfg.peers ? r->cfg.peers : "";
    while (*s) {
        size_t n = strcspn(s, ",");
        if (n && parse_peer(r, s, n, err, cap) < 0)
            return -EINVAL;
        s += n + (s[n] == ',');
    }
    for (int i = 0; i < r->npeers; i++)
        if (r->peers[i].id == (unsigned)r->cfg.id)
            return r->cfg.join || r->npeers >= 3 || r->npeers == 1 ? 0 : (snprintf(err, cap, "--replica-peers: a group has 1, "
                                                                     "3 or 5 members (%d given)", r->npeers), -EINVAL);
    snprintf(err, cap, "--replica-id %d is not a member of --replica-peers '%s'", r->cfg.id, r->cfg.peers ? r->cfg.peers : "");
    return -EINVAL;
}

static const struct peer *peer_by_id(const struct replica *r, unsigned id)
{
    for (int i = 0; i < r->npeers; i++)
        if (r->peers[i].id == id)
            return &r->peers[i];
    return NULL;
}

/* ---------------------------------------------------------------- roles */

int replica_role(const struct replica *r)
{
    return (int)(atomic_load(&r->role_epoch) & 3);
}

int replica_role_epoch(const struct replica *r, uint64_t *epoch)
{
    uint64_t v = atomic_load(&r->role_epoch);
    *epoch = v >> 2;
    return (int)(v & 3);
}

bool replica_leader_addr(const struct replica *r, char *buf, size_t cap)
{
    struct replica *w = (struct replica *)r; /* the lock only */
    pthread_mutex_lock(&w->view_mu);
    bool known = atomic_load(&r->leader_id) != 0 && r->leader_client[0];
    if (known)
        snprintf(buf, cap, "%s", r->leader_client);
    pthread_mutex_unlock(&w->view_mu);
    return known;
}

void replica_refusal(const struct replica *r, int slot, char *buf, size_t cap)
{
    char addr[64];
    if (replica_role(r) == REPLICA_FOLLOWER && replica_leader_addr(r, addr, sizeof addr))
        snprintf(buf, cap, "MOVED %d %s", slot, addr);
    else
        snprintf(buf, cap, "CLUSTERDOWN no leader in this replication group (election running); retry");
}

void replica_figures(const struct replica *r, struct replica_figures *f)
{
    f->applied_index = atomic_load(&r->applied_index);
    f->applied = atomic_load(&r->applied_count);
    f->queued = atomic_load(&r->queued_count);
    uint64_t n = atomic_load(&r->committed_count);
    f->commit_wait_us = n ? atomic_load(&r->commit_wait_us) / n : 0;
    f->journal_commits = atomic_load(&r->journal_commits);
    f->proposed = atomic_load(&r->proposed_count);
    f->proposed_bytes = atomic_load(&r->proposed_bytes);
    struct snap_figures sf;
    snap_figures(r->snap, &sf);
    f->snapshots = sf.taken;
    f->snapshots_failed = sf.failed;
    f->snapshot_index = sf.last_index;
    f->snapshot_bytes = sf.last_bytes;
    f->snapshot_ms = sf.last_ms;
    f->snapshot_total_ms = sf.last_total_ms;
    f->snapshots_restored = sf.restored;
}

static void set_role(struct replica *r, int role)
{
    uint64_t v = atomic_load(&r->role_epoch); /* only this thread writes it */
    if ((int)(v & 3) == role)
        return;
    atomic_store(&r->role_epoch, (((v >> 2) + 1) << 2) | (uint64_t)role);
    log_info("replica %d: %s", r->cfg.id, role == REPLICA_LEADER ? "leads the group now (serving)"
                                          : role == REPLICA_FOLLOWER ? "follows" : "no leader known (election)");
    if (r->cfg.wake)
        r->cfg.wake(r->cfg.wake_arg);
}

static void publish_view(struct replica *r);
static void transfer_tick(struct replica *r);

static void barrier_done(struct raft_barrier *req, int status)
{
    struct replica *r = req->data;
    r->barrier_pending = false;
    if (status == 0 && raft_state(&r->raft) == RAFT_LEADER)
        set_role(r, REPLICA_LEADER);
}

static void map_tick(struct replica *r);

/* Every TICK_MS: follows libraft's state into the atomics. A new leader
 * serves only after a barrier: every entry of earlier terms is applied. */
static void on_tick(uv_timer_t *t)
{
    struct replica *r = t->data;
    if (r->stopping)
        return;
    publish_view(r);
    transfer_tick(r);
    map_tick(r);
    atomic_store(&r->applied_index, raft_last_applied(&r->raft)); /* barriers and configuration entries too */
    raft_id id = 0;
    const char *addr = NULL;
    raft_leader(&r->raft, &id, &addr);
    atomic_store(&r->leader_id, (unsigned)id);
    int st = raft_state(&r->raft);
    if (st == RAFT_LEADER) {
        if (replica_role(r) != REPLICA_LEADER && !r->barrier_pending) {
            r->barrier.data = r;
            r->barrier_pending = raft_barrier(&r->raft, &r->barrier, barrier_done) == 0;
        }
        return;
    }
    set_role(r, id ? REPLICA_FOLLOWER : REPLICA_ELECTING);
}

/* ------------------------------------------------------------ applying */

static int on_conflict(void *ctx, int kind, sqlite3_changeset_iter *it)
{
    (void)ctx, (void)it;
    /* The databases hold the same entries in the same order, so a conflict
     * means a row this node changed outside the log (its own identity
     * rows): the log's version wins. */
    return kind == SQLITE_CHANGESET_NOTFOUND ? SQLITE_CHANGESET_OMIT : SQLITE_CHANGESET_REPLACE;
}

static int exec_sql(sqlite3 *db, const char *sql)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        log_error("replica: %s: %s", sql, sqlite3_errmsg(db));
    return rc;
}

static int set_applied(sqlite3 *db, int64_t index)
{
    char sql[160];
    snprintf(sql, sizeof sql, "INSERT INTO spool_replica (id, applied) VALUES (0, %" PRId64 ") "
             "ON CONFLICT (id) DO UPDATE SET applied = excluded.applied", index);
    return exec_sql(db, sql);
}

static int64_t read_applied(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int64_t v = 0;
    if (sqlite3_prepare_v2(db, "SELECT applied FROM spool_replica WHERE id = 0", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int new_session(struct replica *r, int k, struct journal *jr);
static bool restore_one(struct replica *r, int k, struct journal *jr, const struct inbound *in);
static void inbound_free(struct inbound *in);
static void enqueue(struct replica *r, int k, struct inbound *in);

/* The database would miss an entry the group holds: stop; a restart
 * applies it from the log. */
static void apply_failed(int k, uint64_t index, const char *why)
{
    log_error("replica: shard %d cannot apply log entry %" PRIu64 ": %s; stopping", k, index, why);
    abort();
}

/* Applies one entry's changeset in the open transaction; entries the
 * database holds already are skipped. Returns whether it applied it. */
static bool apply_one(struct replica *r, int k, struct journal *jr, const struct inbound *in)
{
    struct shard_slot *sl = &r->slots[k];
    sqlite3 *db = journal_sqlite(jr);
    if (in->hold)
        return restore_one(r, k, jr, in);
    if ((int64_t)in->index <= sl->applied)
        return false;
    if (sqlite3changeset_apply(db, in->len, (void *)in->cs, NULL, on_conflict, NULL) != SQLITE_OK)
        apply_failed(k, in->index, sqlite3_errmsg(db));
    sl->applied = (int64_t)in->index;
    atomic_fetch_add(&r->applied_count, 1);
    return true;
}

/* Shard thread k (at the start of each of its turns): applies, in order,
 * the committed entries the Raft thread queued for it, on the shard's own
 * connection (the journal holds the file exclusively), all in one
 * transaction with the last one's index (one sync for a catch-up). */
int replica_apply_pending(struct replica *r, int k, struct journal *jr)
{
    struct shard_slot *sl = &r->slots[k];
    pthread_mutex_lock(&r->mu);
    struct inbound *list = sl->in_head;
    sl->in_head = sl->in_tail = NULL;
    pthread_mutex_unlock(&r->mu);
    if (!list)
        return 0;
    if (!sl->applied_known) {
        sl->applied = read_applied(journal_sqlite(jr));
        sl->applied_known = true;
    }
    if (journal_in_txn(jr))
        replica_rollback(r, k, jr); /* what the group holds stays; the rest of the transaction goes */
    if (journal_begin(jr) < 0)
        apply_failed(k, list->index, journal_error(jr));
    replica_detach(r, k); /* no session records what is applied (new_session below) */
    int n = 0;
    while (list) {
        struct inbound *in = list;
        list = in->next;
        n += apply_one(r, k, jr, in);
        inbound_free(in);
        atomic_fetch_sub(&r->queued_count, 1);
    }
    if (n && set_applied(journal_sqlite(jr), sl->applied) != SQLITE_OK)
        apply_failed(k, (uint64_t)sl->applied, sqlite3_errmsg(journal_sqlite(jr)));
    if (journal_commit(jr) < 0)
        apply_failed(k, (uint64_t)sl->applied, journal_error(jr));
    new_session(r, k, jr); /* what was applied is not this node's to propose */
    return n;
}

bool replica_pending(struct replica *r, int k)
{
    pthread_mutex_lock(&r->mu);
    bool any = r->slots[k].in_head != NULL;
    pthread_mutex_unlock(&r->mu);
    return any;
}

/* Raft thread: queues an entry of another proposer (or of this node
 * before it restarted) for its shard, which applies it on its thread. The
 * Raft thread does not wait: a follower keeps acknowledging appends. A
 * new leader serves only after its barrier, when every earlier entry is
 * queued, and a shard applies its queue before it looks at the role. */
static int queue_for_shard(struct replica *r, int k, uint64_t index, const void *cs, int n)
{
    struct inbound *in = malloc(sizeof *in + (size_t)n);
    if (!in)
        return RAFT_NOMEM;
    *in = (struct inbound){ .index = index, .len = n };
    memcpy(in->cs, cs, (size_t)n);
    enqueue(r, k, in);
    return 0;
}

/* Appends an item to shard k's queue and wakes the shard. */
static void enqueue(struct replica *r, int k, struct inbound *in)
{
    struct shard_slot *sl = &r->slots[k];
    pthread_mutex_lock(&r->mu);
    if (sl->in_tail)
        sl->in_tail->next = in;
    else
        sl->in_head = in;
    sl->in_tail = in;
    atomic_fetch_add(&r->queued_count, 1);
    pthread_mutex_unlock(&r->mu);
    r->cfg.apply(r->cfg.wake_arg, k);
}

static bool map_entry(struct replica *r, const struct raft_buffer *buf);

/* The FSM: runs on the Raft thread for every committed entry, in order. */
static int apply_entry(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct replica *r = fsm->data;
    struct entry_head h;
    *result = NULL;
    if (map_entry(r, buf))
        return 0;
    if (buf->len < sizeof h)
        return 0;
    memcpy(&h, buf->base, sizeof h);
    if (h.magic != ENTRY_MAGIC || (int)h.shard >= r->cfg.nshards || h.len > buf->len - sizeof h)
        return 0; /* not a shard turn (or of a wider group): nothing to apply */
    uint64_t index = raft_last_applied(&r->raft) + 1;
    atomic_store(&r->applied_index, index);
    struct shard_slot *sl = &r->slots[h.shard];
    sl->fsm_last = (int64_t)index;
    pthread_mutex_lock(&r->mu);
    if (h.nonce == r->nonce && sl->state == SLOT_WAITING && sl->seq == h.seq) {
        sl->state = SLOT_COMMITTED; /* its shard replies, and commits it in its own transaction */
        sl->index = index;
        pthread_mutex_unlock(&r->mu);
        r->cfg.apply(r->cfg.wake_arg, (int)h.shard);
        return 0;
    }
    pthread_mutex_unlock(&r->mu);
    return queue_for_shard(r, (int)h.shard, index, (const char *)buf->base + sizeof h, (int)h.len);
}

/* ----------------------------------------------------------- proposing */

static void settle(struct replica *r, int k, uint64_t seq, enum slot_state st)
{
    struct shard_slot *sl = &r->slots[k];
    pthread_mutex_lock(&r->mu);
    bool mine = sl->state == SLOT_WAITING && sl->seq == seq;
    if (mine)
        sl->state = st;
    pthread_mutex_unlock(&r->mu);
    if (mine)
        r->cfg.apply(r->cfg.wake_arg, k);
}

static void applied_cb(struct raft_apply *req, int status, void *result)
{
    struct submission *sub = req->data;
    (void)result;
    if (status != 0) /* the FSM never saw it here; another leader may still commit it */
        log_warn("replica %d: entry of shard %d not committed here: %s", sub->r->cfg.id, sub->shard,
                 raft_strerror(status));
    if (status != 0)
        settle(sub->r, sub->shard, sub->seq, SLOT_UNKNOWN);
    free(sub);
}

static void run_reqs(struct replica *r);

static void raft_closed(struct raft *raft)
{
    struct replica *r = raft->data;
    log_info("replica %d: Raft closed", r->cfg.id);
    raft_uv_close(&r->io);
    raft_uv_tcp_close(&r->tcp);
}

/* Raft thread: proposes what the shards handed over. */
static void on_async(uv_async_t *a)
{
    struct replica *r = a->data;
    run_reqs(r);
    pthread_mutex_lock(&r->mu);
    struct submission *list = r->subs;
    r->subs = NULL;
    pthread_mutex_unlock(&r->mu);
    while (list) {
        struct submission *sub = list;
        list = sub->next;
        int rc = r->stopping ? RAFT_SHUTDOWN : atomic_load(&r->handing_over) ? RAFT_NOTLEADER
                 : raft_apply(&r->raft, &sub->req, &sub->buf, 1, applied_cb);
        if (rc != 0) {
            raft_free(sub->buf.base);
            settle(r, sub->shard, sub->seq, SLOT_NOT_PROPOSED);
            free(sub);
        } else {
            atomic_fetch_add(&r->proposed_count, 1);
            atomic_fetch_add(&r->proposed_bytes, sub->buf.len);
        }
    }
    if (r->stopping && !r->closed) {
        r->closed = true;
        log_info("replica %d: leaving the group's loop", r->cfg.id);
        uv_close((uv_handle_t *)&r->tick, NULL);
        uv_close((uv_handle_t *)&r->async, NULL);
        raft_close(&r->raft, raft_closed);
    }
}

/* The journal's own bookkeeping stays local: meta (this directory's
 * identity and commit count, datadir.h) and the applied index. */
static int replicated_table(void *ctx, const char *table)
{
    (void)ctx;
    return strcmp(table, "meta") != 0 && strcmp(table, "spool_replica") != 0;
}

static int new_session(struct replica *r, int k, struct journal *jr)
{
    struct shard_slot *sl = &r->slots[k];
    if (sl->sess)
        sqlite3session_delete(sl->sess);
    sl->sess = NULL;
    sqlite3 *db = journal_sqlite(jr);
    int rc = sqlite3session_create(db, "main", &sl->sess);
    if (rc == SQLITE_OK) {
        sqlite3session_table_filter(sl->sess, replicated_table, NULL);
        rc = sqlite3session_attach(sl->sess, NULL);
    }
    return rc == SQLITE_OK ? 0 : journal_sqlite_fail(jr, rc, "replica session");
}

int replica_attach(struct replica *r, int k, struct journal *jr)
{
    sqlite3 *db = journal_sqlite(jr);
    int rc = sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS spool_replica (id INTEGER PRIMARY KEY, applied INTEGER "
                          "NOT NULL)", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return journal_sqlite_fail(jr, rc, "replica table");
    return new_session(r, k, jr);
}

void replica_detach(struct replica *r, int k)
{
    if (r->slots[k].sess)
        sqlite3session_delete(r->slots[k].sess);
    r->slots[k].sess = NULL;
}

static void deadline_in(struct timespec *ts, int ms)
{
    snap_deadline(ts, ms);
}

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void free_list(struct inbound *in)
{
    while (in) {
        struct inbound *next = in->next;
        inbound_free(in);
        in = next;
    }
}

/* A turn whose entry was not proposed: nothing of it is stored. No slot to
 * name (a turn holds many commands), so no -MOVED: a retry finds the
 * leader through routing. */
static int refuse(struct replica *r, char *why, size_t cap)
{
    char leader[64] = "none known yet";
    replica_leader_addr(r, leader, sizeof leader);
    if (atomic_load(&r->handing_over))
        return snprintf(why, cap, "CLUSTERDOWN not stored: this node is handing the leadership of its replication "
                        "group over to another member; retry"), -EAGAIN;
    snprintf(why, cap, "CLUSTERDOWN not stored: this node no longer leads its replication group (leader: %s); "
             "retry", leader);
    return -EAGAIN;
}

/* Hands the changeset to the Raft thread as the shard's entry in flight;
 * a copy stays in the slot, kept once the group commits it. */
static int submit(struct replica *r, int k, const void *cs, int n)
{
    struct shard_slot *sl = &r->slots[k];
    struct submission *sub = calloc(1, sizeof *sub);
    struct inbound *copy = malloc(sizeof *copy + (size_t)n);
    size_t total = (sizeof(struct entry_head) + (size_t)n + 7) & ~(size_t)7;
    void *base = raft_calloc(1, total);
    if (!sub || !copy || !base) {
        free(sub);
        free(copy);
        raft_free(base);
        return -ENOMEM;
    }
    *copy = (struct inbound){ .len = n };
    memcpy(copy->cs, cs, (size_t)n);
    pthread_mutex_lock(&r->mu);
    struct entry_head h = { ENTRY_MAGIC, r->nonce, ++sl->seq, (uint32_t)k, (uint32_t)n };
    memcpy(base, &h, sizeof h);
    memcpy((char *)base + sizeof h, cs, (size_t)n);
    *sub = (struct submission){ .next = r->subs, .buf = { base, total }, .r = r, .shard = k, .seq = h.seq };
    sub->req.data = sub;
    r->subs = sub;
    sl->state = SLOT_WAITING;
    sl->flight = copy;
    sl->flight_us = mono_us();
    pthread_mutex_unlock(&r->mu);
    uv_async_send(&r->async);
    if (sl->txn_entries++ == 0)
        sl->txn_since_us = sl->flight_us;
    return 0;
}

int replica_propose(struct replica *r, int k, struct journal *jr, char *why, size_t cap)
{
    struct shard_slot *sl = &r->slots[k];
    if (journal_flush(jr) < 0) { /* the turn's held job rows are changes of this entry too */
        snprintf(why, cap, "ERR journal: %s; nothing of this command was stored, retry it", journal_error(jr));
        return -EIO;
    }
    if (sl->sess && sqlite3session_isempty(sl->sess))
        return 1;
    void *cs = NULL;
    int n = 0, rc = sl->sess ? sqlite3session_changeset(sl->sess, &n, &cs) : SQLITE_MISUSE;
    if (rc != SQLITE_OK) {
        snprintf(why, cap, "ERR replication: cannot read the turn's changes (%s); nothing was stored, retry",
                 sqlite3_errstr(rc));
        return -EIO;
    }
    rc = n == 0 ? 1 : replica_role(r) != REPLICA_LEADER ? refuse(r, why, cap) : submit(r, k, cs, n);
    sqlite3_free(cs);
    if (rc == -ENOMEM)
        snprintf(why, cap, "ERR replication: out of memory while proposing; nothing was stored, retry");
    if (rc == 0)
        new_session(r, k, jr); /* the next entry records from here; a failure fails the next proposal */
    return rc;
}

bool replica_hold(const struct replica *r, int k)
{
    const struct shard_slot *sl = &r->slots[k];
    return sl->txn_entries >= TXN_ENTRIES || mono_us() - sl->txn_since_us >= TXN_US;
}

/* Takes the entry in flight once the Raft thread settled it (or at once
 * when abandon: one that commits after all is then queued for the shard
 * like another node's entry). A committed one joins the kept list. */
static enum slot_state take_flight(struct replica *r, int k, bool abandon)
{
    struct shard_slot *sl = &r->slots[k];
    pthread_mutex_lock(&r->mu);
    enum slot_state st = sl->state;
    struct inbound *in = NULL;
    int64_t since = sl->flight_us;
    if (st != SLOT_WAITING || abandon) {
        in = sl->flight;
        sl->flight = NULL;
        sl->state = SLOT_IDLE;
        if (in)
            in->index = sl->index;
    }
    pthread_mutex_unlock(&r->mu);
    if (in && st == SLOT_COMMITTED) {
        if (sl->kept_tail)
            sl->kept_tail->next = in;
        else
            sl->kept_head = in;
        sl->kept_tail = in;
        atomic_fetch_add(&r->committed_count, 1);
        atomic_fetch_add(&r->commit_wait_us, (uint64_t)(mono_us() - since));
    } else {
        free(in);
    }
    return st;
}

int replica_poll(struct replica *r, int k, char *why, size_t cap)
{
    enum slot_state st = take_flight(r, k, false);
    if (st == SLOT_WAITING)
        return 1;
    if (st == SLOT_NOT_PROPOSED)
        return refuse(r, why, cap);
    if (st == SLOT_UNKNOWN) {
        snprintf(why, cap, "CLUSTERDOWN outcome unknown: leadership was lost while this write was being replicated; "
                 "it may or may not take effect (retry it; JOB.PUSH ... UNIQUE makes a retried push safe)");
        return -ETIMEDOUT;
    }
    return 0;
}

/* The open transaction becomes what the group holds: it records the index
 * of the last kept entry and commits. */
void replica_commit(struct replica *r, int k, struct journal *jr)
{
    struct shard_slot *sl = &r->slots[k];
    struct inbound *last = sl->kept_tail;
    if (last && set_applied(journal_sqlite(jr), (int64_t)last->index) != SQLITE_OK)
        apply_failed(k, last->index, sqlite3_errmsg(journal_sqlite(jr)));
    if (journal_commit(jr) < 0)
        apply_failed(k, last ? last->index : 0, journal_error(jr));
    if (last) {
        sl->applied = (int64_t)last->index;
        sl->applied_known = true;
    }
    free_list(sl->kept_head);
    sl->kept_head = sl->kept_tail = NULL;
    sl->txn_entries = 0;
    atomic_fetch_add(&r->journal_commits, 1);
}

int replica_rollback(struct replica *r, int k, struct journal *jr)
{
    struct shard_slot *sl = &r->slots[k];
    take_flight(r, k, true);
    journal_rollback(jr);
    int n = 0;
    if (sl->kept_head) {
        if (!sl->applied_known) {
            sl->applied = read_applied(journal_sqlite(jr));
            sl->applied_known = true;
        }
        if (journal_begin(jr) < 0)
            apply_failed(k, sl->kept_head->index, journal_error(jr));
        replica_detach(r, k);
        for (struct inbound *in = sl->kept_head; in; in = in->next)
            n += apply_one(r, k, jr, in);
        atomic_fetch_sub(&r->applied_count, (uint64_t)n); /* this node's own entries */
        replica_commit(r, k, jr);
    }
    sl->txn_entries = 0;
    if (new_session(r, k, jr) < 0)
        log_error("replica: shard %d: %s", k, journal_error(jr));
    return n;
}

/* ------------------------------------------------------------ snapshots
 *
 * Log compaction (replica_snap.h): every --replica-snapshot-entries applied
 * entries libraft asks for a snapshot. fsm_snapshot (Raft thread) notes,
 * per shard, the last entry the FSM saw for it; fsm_snapshot_async (a
 * libuv worker) waits until every shard handed its journal over holding
 * that entry (replica_snap_turn, on the shard thread); libraft writes the
 * images, then drops the log before the index less the trailing entries.
 * fsm_restore queues each shard's image like an entry: the shard replaces
 * its journal with it in order with the entries around it. */

struct snap_hold {
    _Atomic int refs;
    void *base; /* the snapshot libraft handed over (raft_free) */
};

static void inbound_free(struct inbound *in)
{
    if (in->hold && atomic_fetch_sub(&in->hold->refs, 1) == 1) {
        raft_free(in->hold->base);
        free(in->hold);
    }
    free(in);
}

/* Shard thread k, in the apply transaction: the image replaces the
 * journal's replicated tables, unless the journal holds every entry the
 * image does (a restart: the log after the snapshot levels both). */
static bool restore_one(struct replica *r, int k, struct journal *jr, const struct inbound *in)
{
    struct shard_slot *sl = &r->slots[k];
    if (in->part.applied <= sl->applied)
        return false;
    char err[400];
    if (snap_restore(journal_sqlite(jr), in->part.img, in->part.len, err, sizeof err) < 0)
        apply_failed(k, in->index, err);
    log_info("replica %d: shard %d: journal replaced by the snapshot at log index %" PRIu64 " (%zu bytes; it held "
             "entries up to %" PRId64 ", this journal up to %" PRId64 ")", r->cfg.id, k, in->index, in->part.len,
             in->part.applied, sl->applied);
    sl->applied = in->part.applied;
    return true;
}

void replica_snap_turn(struct replica *r, int k, struct journal *jr)
{
    struct shard_slot *sl = &r->slots[k];
    if (!sl->applied_known && !journal_in_txn(jr)) {
        sl->applied = read_applied(journal_sqlite(jr));
        sl->applied_known = true;
    }
    if (sl->applied_known)
        snap_offer(r->snap, k, journal_sqlite(jr), journal_in_txn(jr), sl->applied);
}

static void map_snap_take(struct replica *r);
static int map_snap_append(struct replica *r, struct raft_buffer **bufs, unsigned *n);
static unsigned map_snap_release(struct raft_buffer *bufs, unsigned n, int nshards);
static void map_snap_restore(struct replica *r, const struct raft_buffer *buf, const struct snap_part *last);

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n)
{
    struct replica *r = fsm->data;
    int64_t need[r->cfg.nshards > 0 ? r->cfg.nshards : 1];
    for (int k = 0; k < r->cfg.nshards; k++)
        need[k] = r->slots[k].fsm_last;
    *bufs = NULL;
    *n = 0;
    if (r->stopping || snap_begin(r->snap, raft_last_applied(&r->raft), need) < 0)
        return RAFT_BUSY; /* libraft tries again later */
    map_snap_take(r);
    return 0;
}

static int fsm_snapshot_async(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n)
{
    struct replica *r = fsm->data;
    int rc = snap_collect(r->snap, r->cfg.apply, r->cfg.wake_arg, r->cfg.snapshot_timeout_ms, bufs, n);
    if (rc == 0)
        rc = map_snap_append(r, bufs, n);
    return rc == 0 ? 0 : rc == -ENOMEM ? RAFT_NOMEM : rc == -EFBIG ? RAFT_TOOBIG : RAFT_BUSY;
}

static int fsm_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n)
{
    struct replica *r = fsm->data;
    snap_release(r->snap, *bufs, map_snap_release(*bufs, *n, r->cfg.nshards));
    *bufs = NULL;
    *n = 0;
    return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct replica *r = fsm->data;
    int nsh = r->cfg.nshards;
    struct snap_part parts[nsh > 0 ? nsh : 1];
    uint64_t index = 0;
    char err[300];
    if (snap_parse(buf->base, buf->len, nsh, &index, parts, err, sizeof err) < 0) {
        log_error("replica %d: cannot restore a snapshot: %s", r->cfg.id, err);
        return RAFT_MALFORMED; /* libraft keeps the buffer */
    }
    struct snap_hold *hold = malloc(sizeof *hold);
    if (!hold)
        return RAFT_NOMEM;
    map_snap_restore(r, buf, &parts[nsh - 1]);
    hold->base = buf->base;
    atomic_init(&hold->refs, nsh);
    for (int k = 0; k < nsh; k++) {
        struct inbound *in = calloc(1, sizeof *in);
        if (!in)
            abort(); /* a half-queued snapshot cannot be undone */
        *in = (struct inbound){ .index = index, .hold = hold, .part = parts[k] };
        if (parts[k].applied > r->slots[k].fsm_last)
            r->slots[k].fsm_last = parts[k].applied;
        enqueue(r, k, in);
    }
    atomic_store(&r->applied_index, index);
    snap_count_restore(r->snap);
    log_info("replica %d: snapshot at log index %" PRIu64 " (%zu bytes) queued for the shards", r->cfg.id, index,
             (size_t)buf->len);
    return 0;
}

/* ----------------------------------------------------------- membership
 *
 * The group's members live in the Raft log (libraft's configuration
 * entries, and each snapshot), so --replica-peers only bootstraps a new
 * group. A member's address there is "RAFTHOST:PORT/HOST:PORT": libraft
 * treats it as opaque, the transport below connects to the part before the
 * slash, and every node learns each member's client address (for -MOVED)
 * from the log. A group bootstrapped with bare Raft addresses gets its
 * client addresses from --replica-peers.
 *
 * Changes (REPLICA.ADD, REPLICA.REMOVE, cmd_replica.c) are handed to the
 * Raft thread like a turn's entry; the leader starts them with raft_add
 * then raft_assign (a new member first catches up as a spare, by snapshot
 * when the log was compacted, then votes) or raft_remove, one at a time;
 * their outcome shows in the view (replica_members). */

#define CHANGE_TRANSFER 2 /* beside REPLICA_ADD and REPLICA_REMOVE: the "transfer" section */

/* ------------------------------------------------------------- requests
 *
 * What other threads ask of the Raft thread: a membership change, a
 * leadership transfer (a change_req) or a slot map change (a map_req, the
 * "slot map" section). The asking thread puts the request on one list
 * under mu and goes on; the Raft thread takes the list (run_reqs, on its
 * async) and answers each request once through its answer function,
 * called on the Raft thread: at once when it refuses or starts a change;
 * when it ends for a transfer (transfer_end) and a map change (map_applied,
 * or map_tick after REQ_WAIT_MS: outcome unknown). An I/O thread's answer
 * function posts the reply to it (cmd_replica.c), so an I/O thread never
 * waits on the Raft thread; the stop sequence's hand-over waits on
 * change_cv (replica_transfer_wait). */

#define REQ_WAIT_MS 10000

enum { REQ_CHANGE, REQ_MAP };

struct raft_req {
    struct raft_req *next;
    int kind;                  /* REQ_CHANGE (struct change_req) or REQ_MAP (struct map_req) */
    replica_answer_fn answer;
    void *arg;
    int64_t deadline_us;       /* mono_us: a map change not committed by then is answered "outcome unknown" */
    bool answered;
    char msg[400];             /* the client's words: an error, or what happened */
};

struct change_req {
    struct raft_req base;
    int op;
    unsigned id;
    char addr[140];
};

static void split_addr(const struct replica *r, unsigned id, const char *addr, char *raft, char *client)
{
    const char *slash = strchr(addr, '/');
    const struct peer *p = peer_by_id(r, id);
    snprintf(raft, 64, "%.*s", slash ? (int)(slash - addr) : 63, addr);
    snprintf(client, 64, "%s", slash ? slash + 1 : p ? p->client_addr : "");
}

static int64_t heard_ago_ms(const struct replica *r, raft_id id);

/* Raft thread, every tick: the members, their roles and (on the leader)
 * how far each holds the log, and the leader's client address. */
static void publish_view(struct replica *r)
{
    const struct raft_configuration *c = &r->raft.configuration;
    bool lead = raft_state(&r->raft) == RAFT_LEADER;
    raft_id lid = 0;
    const char *laddr = NULL;
    raft_leader(&r->raft, &lid, &laddr);
    pthread_mutex_lock(&r->view_mu);
    r->nview = 0;
    for (unsigned i = 0; i < c->n && r->nview < REPLICA_MAX_PEERS; i++) {
        struct replica_member *m = &r->view[r->nview++];
        m->id = (unsigned)c->servers[i].id;
        m->role = c->servers[i].role == RAFT_VOTER ? REPLICA_VOTER : c->servers[i].role == RAFT_STANDBY
                  ? REPLICA_STANDBY : REPLICA_SPARE;
        m->leader = c->servers[i].id == lid;
        m->match_index = lead ? r->raft.leader_state.progress[i].match_index : 0;
        m->heard_ms = c->servers[i].id == r->raft.id ? -1 : heard_ago_ms(r, c->servers[i].id);
        split_addr(r, m->id, c->servers[i].address, m->raft_addr, m->client_addr);
    }
    char raft[64];
    r->leader_client[0] = 0;
    if (lid && laddr)
        split_addr(r, (unsigned)lid, laddr, raft, r->leader_client);
    pthread_mutex_unlock(&r->view_mu);
}

int replica_members(const struct replica *r, struct replica_member *out, int cap, char *status, size_t scap)
{
    struct replica *w = (struct replica *)r; /* the lock only */
    pthread_mutex_lock(&w->view_mu);
    int n = r->nview < cap ? r->nview : cap;
    memcpy(out, r->view, (size_t)n * sizeof *out);
    snprintf(status, scap, "%s", r->change_status[0] ? r->change_status : "none");
    pthread_mutex_unlock(&w->view_mu);
    return n;
}

static void set_status(struct replica *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_status(struct replica *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&r->view_mu);
    vsnprintf(r->change_status, sizeof r->change_status, fmt, ap);
    pthread_mutex_unlock(&r->view_mu);
    va_end(ap);
    log_info("replica %d: membership: %s", r->cfg.id, r->change_status);
}

static void change_done(struct raft_change *req, int status);

/* libraft ends a promotion with RAFT_NOCONNECTION when one catch-up round
 * (the log up to the leader's last entry when the round began) outlasts
 * its max_catch_up_round_duration, catch_up_round_ms: a snapshot of a
 * large journal does, on a slow disk or a busy machine, while the node
 * answers all along. A node heard from within ADD_SILENT_MAX_MS gets
 * another round (it goes on from what it holds; the one up to date at its
 * start is promoted at once), for up to ADD_CATCH_UP_MAX_S in all; one not
 * heard fails the addition as before. The silence allowed is long: a node
 * busy taking in a snapshot of tens of MB answers no heartbeat for seconds
 * under load. Raft thread. */
#define ADD_CATCH_UP_MAX_S 120
#define ADD_SILENT_MAX_MS 30000

static bool add_goes_on(struct replica *r, int status)
{
    if (status != RAFT_NOCONNECTION || r->change_op != REPLICA_ADD ||
        mono_us() - r->change_catch_up_us > (int64_t)ADD_CATCH_UP_MAX_S * 1000000)
        return false;
    int64_t ago = heard_ago_ms(r, r->change_id);
    if (ago < 0 || ago > ADD_SILENT_MAX_MS)
        return false;
    if (raft_assign(&r->raft, &r->change, r->change_id, RAFT_VOTER, change_done) != 0)
        return false;
    set_status(r, "in progress: node %u catching up to vote (a round outlasted %d ms; it answers: another round)",
               r->change_id, r->cfg.catch_up_round_ms);
    return true;
}

static void change_done(struct raft_change *req, int status)
{
    struct replica *r = req->data;
    if (add_goes_on(r, status))
        return;
    r->change_busy = false;
    if (status == 0)
        set_status(r, "done: node %u %s", r->change_id, r->change_op == REPLICA_ADD ? "is a voter" : "was removed");
    else
        set_status(r, "failed: node %u: %s (see INFO replication and docs/replication.md, Membership)", r->change_id,
                   raft_strerror(status));
}

/* The new member is in the configuration as a spare: now it catches up
 * (libraft sends it the log, or the snapshot) and becomes a voter. */
static void change_added(struct raft_change *req, int status)
{
    struct replica *r = req->data;
    int rc = status;
    r->change_catch_up_us = mono_us();
    if (rc == 0 && (rc = raft_assign(&r->raft, &r->change, r->change_id, RAFT_VOTER, change_done)) == 0) {
        set_status(r, "in progress: node %u %s", r->change_id, "added as a spare, catching up to vote");
        return;
    }
    change_done(req, rc);
}

static const struct raft_server *member_of(struct replica *r, unsigned id)
{
    for (unsigned i = 0; i < r->raft.configuration.n; i++)
        if (r->raft.configuration.servers[i].id == id)
            return &r->raft.configuration.servers[i];
    return NULL;
}

/* The member whose Raft or client address equals one of addr's
 * ("RAFT/CLIENT"). */
static const struct raft_server *member_at(struct replica *r, const char *addr)
{
    char raft[64], client[64], mraft[64], mclient[64];
    split_addr(r, 0, addr, raft, client);
    for (unsigned i = 0; i < r->raft.configuration.n; i++) {
        const struct raft_server *s = &r->raft.configuration.servers[i];
        split_addr(r, (unsigned)s->id, s->address, mraft, mclient);
        if (!strcmp(raft, mraft) || !strcmp(client, mclient))
            return s;
    }
    return NULL;
}

/* An ADD of a node left a spare (its catch-up failed, or the leader that
 * added it died): it catches up and votes now. */
static int resume_add(struct replica *r, struct change_req *q)
{
    r->change.data = r;
    r->change_id = q->id;
    r->change_op = REPLICA_ADD;
    r->change_catch_up_us = mono_us();
    int rc = raft_assign(&r->raft, &r->change, q->id, RAFT_VOTER, change_done);
    if (rc != 0)
        return snprintf(q->base.msg, sizeof q->base.msg, "ERR node %u: %s", q->id, raft_strerror(rc)), -EINVAL;
    r->change_busy = true;
    set_status(r, "in progress: node %u %s", q->id, "(a spare already) catching up to vote");
    return 0;
}

/* Raft thread: -EAGAIN with the client's error in q->base.msg when this node
 * does not lead (what: the command to send to the leader instead). */
static int not_leading(struct replica *r, struct change_req *q, const char *what)
{
    char leader[64] = "none known";
    replica_leader_addr(r, leader, sizeof leader);
    if (raft_state(&r->raft) == RAFT_LEADER)
        return 0;
    snprintf(q->base.msg, sizeof q->base.msg, "READONLY this node does not lead its replication group: send %s to the leader "
             "(%s)", what, leader);
    return -EAGAIN;
}

/* Raft thread: starts one change, or says why not. */
static int start_change(struct replica *r, struct change_req *q)
{
    if (not_leading(r, q, "it") < 0)
        return -EAGAIN;
    if (r->change_busy)
        return snprintf(q->base.msg, sizeof q->base.msg, "ERR a membership change is in progress (node %u); wait until "
                        "REPLICA.MEMBERS shows it done, then retry", r->change_id), -EBUSY;
    const struct raft_server *old = member_of(r, q->id);
    if (q->op == REPLICA_ADD && old && old->role != RAFT_VOTER && !strcmp(old->address, q->addr))
        return resume_add(r, q);
    if (q->op == REPLICA_ADD && member_of(r, q->id))
        return snprintf(q->base.msg, sizeof q->base.msg, "ERR node %u is a member already (%s); remove it first, or give the new "
                        "node another --replica-id", q->id, member_of(r, q->id)->address), -EEXIST;
    const struct raft_server *dup = q->op == REPLICA_ADD ? member_at(r, q->addr) : NULL;
    if (dup)
        return snprintf(q->base.msg, sizeof q->base.msg, "ERR node %u has that Raft or client address already (%s); give the new "
                        "node addresses of its own", (unsigned)dup->id, dup->address), -EEXIST;
    if (q->op == REPLICA_ADD && r->raft.configuration.n >= REPLICA_MAX_PEERS)
        return snprintf(q->base.msg, sizeof q->base.msg, "ERR the group has %d members, the most it can have",
                        REPLICA_MAX_PEERS), -ENOSPC;
    if (q->op == REPLICA_REMOVE && !member_of(r, q->id))
        return snprintf(q->base.msg, sizeof q->base.msg, "ERR node %u is not a member of the group (REPLICA.MEMBERS lists "
                        "them)", q->id), -ENOENT;
    if (q->op == REPLICA_REMOVE && q->id == (unsigned)r->cfg.id)
        return snprintf(q->base.msg, sizeof q->base.msg, "ERR node %u leads the group and cannot remove itself: stop it, and "
                        "once another node leads, remove it there", q->id), -EINVAL;
    r->change.data = r;
    r->change_id = q->id;
    r->change_op = q->op;
    int rc = q->op == REPLICA_ADD ? raft_add(&r->raft, &r->change, q->id, q->addr, change_added)
                                  : raft_remove(&r->raft, &r->change, q->id, change_done);
    if (rc != 0)
        return snprintf(q->base.msg, sizeof q->base.msg, "ERR node %u (%s): %s%s%s", q->id, q->addr, raft_strerror(rc),
                        raft_errmsg(&r->raft)[0] ? ": " : "", raft_errmsg(&r->raft)), -EINVAL;
    r->change_busy = true;
    set_status(r, "in progress: node %u %s", q->id, q->op == REPLICA_ADD ? "being added" : "being removed");
    return 0;
}

static int transfer_start(struct replica *r, struct change_req *q);

/* Any thread: hands q to the Raft thread, which answers it through
 * answer(arg, …) once (see "requests" above). */
static void req_submit(struct replica *r, struct raft_req *q, replica_answer_fn answer, void *arg)
{
    q->answer = answer;
    q->arg = arg;
    q->deadline_us = mono_us() + (int64_t)REQ_WAIT_MS * 1000;
    pthread_mutex_lock(&r->mu);
    q->next = r->reqs;
    r->reqs = q;
    pthread_mutex_unlock(&r->mu);
    uv_async_send(&r->async);
}

/* Raft thread: answers q (rc 0, or negative with the error in q->msg). */
static void req_answer(struct raft_req *q, int rc)
{
    q->answered = true;
    q->answer(q->arg, rc, q->msg);
}

static void map_req_free(struct map_req *q);

static void req_free(struct raft_req *q)
{
    if (q->kind == REQ_MAP)
        map_req_free((struct map_req *)q);
    else
        free(q);
}

static int map_start(struct replica *r, struct map_req *q);

/* Raft thread: starts one request; negative (refused) or 0 (done) to be
 * answered now, 1 when it is answered as it ends. */
static int req_start(struct replica *r, struct raft_req *q)
{
    if (r->stopping)
        return snprintf(q->msg, sizeof q->msg, "ERR this node is stopping; send it to the group's new leader "
                        "(REPLICA.MEMBERS on another member names it)"), -ESHUTDOWN;
    if (q->kind == REQ_MAP)
        return map_start(r, (struct map_req *)q);
    struct change_req *c = (struct change_req *)q;
    return c->op == CHANGE_TRANSFER ? transfer_start(r, c) : start_change(r, c);
}

/* Raft thread (on_async): serves the requests handed over, oldest first. */
static void run_reqs(struct replica *r)
{
    pthread_mutex_lock(&r->mu);
    struct raft_req *list = r->reqs, *fifo = NULL;
    r->reqs = NULL;
    pthread_mutex_unlock(&r->mu);
    while (list) {
        struct raft_req *next = list->next;
        list->next = fifo;
        fifo = list;
        list = next;
    }
    while (fifo) {
        struct raft_req *q = fifo;
        fifo = q->next;
        int rc = req_start(r, q);
        if (rc == 1)
            continue; /* answered when it ends */
        req_answer(q, rc);
        req_free(q);
    }
}

int replica_change(struct replica *r, int op, unsigned id, const char *raft_addr, const char *client_addr,
                   replica_answer_fn answer, void *arg)
{
    struct change_req *q = calloc(1, sizeof *q);
    if (!q)
        return -ENOMEM;
    *q = (struct change_req){ .base.kind = REQ_CHANGE, .op = op, .id = id };
    snprintf(q->addr, sizeof q->addr, "%s/%s", raft_addr ? raft_addr : "", client_addr ? client_addr : "");
    req_submit(r, &q->base, answer, arg);
    return 0;
}

/* ------------------------------------------------------------- transfer
 *
 * Leadership transfer (REPLICA.TRANSFER, and a leader stopped with
 * SIGTERM: replica_handover). On the Raft thread, transfer_start picks the
 * target (the one named, or the voter that holds the most of the log) and
 * refuses one that is not a voter or is silent: not heard from within the
 * election timeout (stopped, hung, cut off; may_lead). A live voter that
 * lags is taken: libraft sends it the rest of the log before TimeoutNow.
 * Then the node stops proposing (handing_over: a
 * turn that reaches the Raft thread is "not stored", a clean retry) until
 * the shards' entries in flight settled, at most XFER_DRAIN_MS, so a
 * planned hand-over leaves no write "outcome unknown"; transfer_tick then
 * calls raft_transfer: libraft sends the target the rest of the log, then
 * TimeoutNow, and the target starts its election at once (no pre-vote, no
 * election timeout to wait for). The request is answered (transfer_end)
 * once another node leads, or when libraft gave up (after an election
 * timeout) or XFER_GIVE_UP election timeouts passed; proposals resume if
 * this node still leads. */

#define XFER_DRAIN_MS 200
enum { XFER_DRAIN, XFER_RAFT, XFER_OVER }; /* proposals stopping; libraft's transfer runs; libraft called back */
#define XFER_GIVE_UP 3

static void transfer_end(struct replica *r, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void transfer_end(struct replica *r, int rc, const char *fmt, ...)
{
    struct change_req *q = r->xfer_q;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q->base.msg, sizeof q->base.msg, fmt, ap);
    va_end(ap);
    r->xfer_q = NULL;
    atomic_store(&r->handing_over, false);
    log_info("replica %d: leadership transfer to node %u: %s", r->cfg.id, r->xfer_target, rc == 0 ? "done" : "failed");
    req_answer(&q->base, rc);
    free(q);
}

/* Milliseconds since this node last heard from node id (any Raft message:
 * on the leader, the answers to its AppendEntries, heartbeats included),
 * or -1 if it never did. */
static int64_t heard_ago_ms(const struct replica *r, raft_id id)
{
    if (id >= sizeof r->heard_us / sizeof r->heard_us[0] || !r->heard_us[id])
        return -1;
    return (mono_us() - r->heard_us[id]) / 1000;
}

/* May configuration member i take over: a voter, not this node, heard from
 * within the election timeout? One that lags is fine: libraft's transfer
 * sends it the rest of the log (the heartbeats do) and sends TimeoutNow
 * once it holds all of it, or gives up after an election timeout. One
 * not heard from (stopped, cut off) would only stall the writes that long. */
static bool may_lead(struct replica *r, unsigned i)
{
    const struct raft_server *s = &r->raft.configuration.servers[i];
    int64_t ago = heard_ago_ms(r, s->id);
    return s->id != r->raft.id && s->role == RAFT_VOTER && ago >= 0 && ago <= r->cfg.election_ms;
}

/* When node id was last heard from, for an error: "last heard by this
 * leader 1234 ms ago", or "not heard by this leader since it started". */
static void heard_words(struct replica *r, raft_id id, char *out, size_t cap)
{
    int64_t ago = heard_ago_ms(r, id);
    if (ago < 0)
        snprintf(out, cap, "not heard by this leader since it started");
    else
        snprintf(out, cap, "last heard by this leader %lld ms ago", (long long)ago);
}

/* The follower to hand over to: of those that may lead, the one that holds
 * the most of the log; -1 with why in q->base.msg. */
static int transfer_pick(struct replica *r, struct change_req *q)
{
    int best = -1;
    const struct raft_progress *pr = r->raft.leader_state.progress;
    for (unsigned i = 0; i < r->raft.configuration.n; i++)
        if (may_lead(r, i) && (best < 0 || pr[i].match_index > pr[best].match_index))
            best = (int)i;
    if (best >= 0)
        return best;
    int n = snprintf(q->base.msg, sizeof q->base.msg, "ERR no follower can take over: none is a voter heard from within "
                     "the election timeout (%d ms)", r->cfg.election_ms);
    char when[64];
    for (unsigned i = 0; i < r->raft.configuration.n && n < (int)sizeof q->base.msg; i++)
        if (r->raft.configuration.servers[i].id != r->raft.id) {
            heard_words(r, r->raft.configuration.servers[i].id, when, sizeof when);
            n += snprintf(q->base.msg + n, sizeof q->base.msg - (size_t)n, "; node %llu %s",
                          (unsigned long long)r->raft.configuration.servers[i].id, when);
        }
    if (n < (int)sizeof q->base.msg)
        snprintf(q->base.msg + n, sizeof q->base.msg - (size_t)n, "%s", r->raft.configuration.n > 1 ? ": start a "
                 "stopped follower or reconnect it, then retry" : ": the group has no other member");
    return -1;
}

/* The member named by q->id, if it may take over; -1 with why in q->base.msg. */
static int transfer_named(struct replica *r, struct change_req *q)
{
    for (unsigned i = 0; i < r->raft.configuration.n; i++) {
        const struct raft_server *s = &r->raft.configuration.servers[i];
        if (s->id != q->id)
            continue;
        if (may_lead(r, i))
            return (int)i;
        if (s->id == r->raft.id)
            return snprintf(q->base.msg, sizeof q->base.msg, "ERR node %u leads the group already", q->id), -1;
        if (s->role != RAFT_VOTER)
            return snprintf(q->base.msg, sizeof q->base.msg, "ERR node %u is not a voter (a spare catching up, or a standby): "
                            "it cannot lead", q->id), -1;
        char when[64];
        heard_words(r, s->id, when, sizeof when);
        return snprintf(q->base.msg, sizeof q->base.msg, "ERR node %u is silent (%s; the election timeout "
                        "is %d ms): it is stopped, hung or cut off; start or reconnect it (spool cluster replicas "
                        "shows when each member was last heard), or name another node",
                        q->id, when, r->cfg.election_ms), -1;
    }
    return snprintf(q->base.msg, sizeof q->base.msg, "ERR node %u is not a member of the group (REPLICA.MEMBERS lists them)",
                    q->id), -1;
}

/* Raft thread: checks the request and starts the hand-over (1: answered
 * later by transfer_end), or says why not (negative). */
static int transfer_start(struct replica *r, struct change_req *q)
{
    if (not_leading(r, q, "REPLICA.TRANSFER") < 0)
        return -EAGAIN;
    if (r->xfer_q || r->raft.transfer)
        return snprintf(q->base.msg, sizeof q->base.msg, "ERR a leadership transfer is in progress already; wait for it"),
               -EBUSY;
    int i = q->id ? transfer_named(r, q) : transfer_pick(r, q);
    if (i < 0)
        return -EINVAL;
    r->xfer_q = q;
    r->xfer_target = (unsigned)r->raft.configuration.servers[i].id;
    r->xfer_phase = XFER_DRAIN;
    r->xfer_drain_until_us = mono_us() + XFER_DRAIN_MS * 1000;
    r->xfer_give_up_us = r->xfer_drain_until_us + (int64_t)XFER_GIVE_UP * r->cfg.election_ms * 1000;
    r->xfer_match = r->raft.leader_state.progress[i].match_index;
    r->xfer_commit = r->raft.commit_index;
    atomic_store(&r->handing_over, true);
    log_info("replica %d: handing the leadership over to node %u (it holds the log to %llu, the group committed "
             "%llu); proposals stop until the entries in flight settle", r->cfg.id, r->xfer_target,
             (unsigned long long)r->xfer_match, (unsigned long long)r->xfer_commit);
    return 1;
}

static bool entries_in_flight(struct replica *r)
{
    bool any = false;
    pthread_mutex_lock(&r->mu);
    for (int k = 0; k < r->cfg.nshards; k++)
        any |= r->slots[k].state == SLOT_WAITING;
    pthread_mutex_unlock(&r->mu);
    return any;
}

/* libraft's callback: the target leads, or libraft gave up (an election
 * timeout after it started); transfer_tick tells which, and gives a target
 * that was sent TimeoutNow late one more election timeout to win. */
static void transfer_done(struct raft_transfer *req)
{
    struct replica *r = req->data;
    if (r->xfer_q && r->xfer_phase == XFER_RAFT) {
        r->xfer_phase = XFER_OVER;
        r->xfer_over_us = mono_us();
    }
}

/* Raft thread, every tick while a hand-over runs: starts libraft's
 * transfer once the entries in flight settled, ends it once it is over. */
static void transfer_tick(struct replica *r)
{
    if (!r->xfer_q)
        return;
    raft_id lid = 0;
    const char *laddr = NULL;
    raft_leader(&r->raft, &lid, &laddr);
    bool leads = raft_state(&r->raft) == RAFT_LEADER, late = mono_us() > r->xfer_give_up_us;
    char client[64] = "", raft[64];
    if (lid && laddr)
        split_addr(r, (unsigned)lid, laddr, raft, client);
    if (!leads && lid == r->xfer_target)
        return transfer_end(r, 0, "node %u leads the group now (%s; when asked it held the log to %llu, the group "
                            "had committed %llu)", r->xfer_target, client, (unsigned long long)r->xfer_match,
                            (unsigned long long)r->xfer_commit);
    if (!leads && (lid || late))
        return transfer_end(r, -EAGAIN, "ERR leadership moved, but not to node %u (leader now: %s); see "
                            "REPLICA.MEMBERS", r->xfer_target, lid ? client : "none known");
    bool gave_up = r->xfer_phase == XFER_OVER && mono_us() - r->xfer_over_us > (int64_t)r->cfg.election_ms * 1000;
    if (leads && (gave_up || (r->xfer_phase != XFER_DRAIN && late)))
        return transfer_end(r, -ETIMEDOUT, "ERR node %u did not take over within the election timeout (%d ms; when "
                            "asked it held the log to %llu, the group had committed %llu); node %d still leads: "
                            "retry, or name another node", r->xfer_target, r->cfg.election_ms,
                            (unsigned long long)r->xfer_match, (unsigned long long)r->xfer_commit, r->cfg.id);
    if (!leads || r->xfer_phase != XFER_DRAIN || (entries_in_flight(r) && mono_us() < r->xfer_drain_until_us))
        return;
    r->xfer.data = r;
    int rc = raft_transfer(&r->raft, &r->xfer, r->xfer_target, transfer_done);
    if (rc != 0)
        return transfer_end(r, -EIO, "ERR node %u: cannot start the transfer: %s", r->xfer_target, raft_strerror(rc));
    r->xfer_phase = XFER_RAFT;
}

int replica_transfer(struct replica *r, unsigned id, replica_answer_fn answer, void *arg)
{
    return replica_change(r, CHANGE_TRANSFER, id, NULL, NULL, answer, arg);
}

/* A thread that waits for its answer (the stop sequence's hand-over). */
struct waiter {
    struct replica *r;
    bool done, abandoned;
    int rc;
    char msg[400];
};

static void wake_waiter(void *arg, int rc, const char *msg)
{
    struct waiter *w = arg;
    struct replica *r = w->r;
    pthread_mutex_lock(&r->mu);
    bool gone = w->abandoned;
    w->rc = rc;
    snprintf(w->msg, sizeof w->msg, "%s", msg);
    w->done = true;
    pthread_cond_broadcast(&r->change_cv);
    pthread_mutex_unlock(&r->mu);
    if (gone)
        free(w);
}

/* replica_transfer, waiting for the answer (a few election timeouts; after
 * REQ_WAIT_MS the Raft thread is taken to be stuck). */
static int replica_transfer_wait(struct replica *r, char *msg, size_t cap)
{
    struct waiter *w = calloc(1, sizeof *w);
    if (w)
        w->r = r;
    if (!w || replica_transfer(r, 0, wake_waiter, w) < 0) {
        free(w);
        return snprintf(msg, cap, "out of memory"), -ENOMEM;
    }
    struct timespec until;
    deadline_in(&until, REQ_WAIT_MS);
    pthread_mutex_lock(&r->mu);
    while (!w->done && pthread_cond_timedwait(&r->change_cv, &r->mu, &until) != ETIMEDOUT)
        ;
    bool done = w->done;
    w->abandoned = !done;
    int rc = done ? w->rc : -ETIMEDOUT;
    snprintf(msg, cap, "%s", done ? w->msg : "the replication thread did not answer in time");
    pthread_mutex_unlock(&r->mu);
    if (done)
        free(w);
    return rc;
}

void replica_handover(struct replica *r)
{
    if (!r || replica_role(r) != REPLICA_LEADER)
        return;
    char msg[400];
    int64_t t0 = mono_us();
    log_info("replica %d: stopping as the leader: handing the leadership over first", r->cfg.id);
    if (replica_transfer_wait(r, msg, sizeof msg) == 0)
        log_info("replica %d: %s, %.0f ms after the hand-over began; stopping", r->cfg.id, msg,
                 (double)(mono_us() - t0) / 1000.0);
    else
        log_warn("replica %d: stopping without handing the leadership over (%.0f ms spent): %s", r->cfg.id,
                 (double)(mono_us() - t0) / 1000.0, strncmp(msg, "ERR ", 4) ? msg : msg + 4);
}

/* ------------------------------------------------------------ slot map
 *
 * Cluster mode (docs/cluster.md "The slot map"): the map's first group
 * keeps the map. A change (CLUSTER CASMAP, cmd_cluster.c) is handed to the
 * leader's Raft thread, which accepts it only if this node's map has the
 * epoch the change was made from and no other map entry of its own is in
 * flight; then the new map is an entry of its own (struct map_head, then
 * the JSON). Every member's FSM installs it when committed (a newer epoch
 * only: a restart's replay of older entries changes nothing), and the
 * proposer answers once its own FSM did. A leader serves only after its
 * barrier, so its map is the last one committed when it checks. Each
 * snapshot carries the map after the shards' images, so a member that
 * catches up by snapshot has it too. */

#define MAP_MAGIC 0x73706f6f6c6d3031ULL /* "spoolm01" */

struct map_head {
    uint64_t magic;
    uint32_t len; /* of the JSON; the entry is padded to 8 bytes */
    uint32_t pad;
};

struct map_req {
    struct raft_req base;
    struct raft_apply req;
    struct replica *r;
    uint64_t old;
    char *json;
    size_t len;
};

static void map_req_free(struct map_req *q)
{
    free(q->json);
    free(q);
}

void replica_map_attach(struct replica *r, struct cluster *cl)
{
    r->cl = cl;
}

/* A buffer holding a map entry or a snapshot's map: head, then json. */
static void *map_buffer(const char *json, size_t len, size_t *total)
{
    *total = (sizeof(struct map_head) + len + 7) & ~(size_t)7;
    void *base = raft_calloc(1, *total);
    if (base) {
        struct map_head h = { MAP_MAGIC, (uint32_t)len, 0 };
        memcpy(base, &h, sizeof h);
        memcpy((char *)base + sizeof h, json, len);
    }
    return base;
}

/* Installs the map held at p (len bytes, a map_head first) when it is
 * newer. Whether p held one. */
static bool map_take(struct replica *r, const void *p, size_t len, const char *from)
{
    struct map_head h;
    if (len < sizeof h || (memcpy(&h, p, sizeof h), h.magic != MAP_MAGIC) || h.len > len - sizeof h)
        return false;
    char err[300];
    int rc = r->cl ? cluster_take_committed(r->cl, (const char *)p + sizeof h, h.len, err, sizeof err) : 0;
    if (rc < 0) { /* the group holds it and this node could not keep it: a restart applies it again */
        log_error("replica %d: cannot install the slot map of %s: %s; stopping", r->cfg.id, from, err);
        abort();
    }
    if (rc == 1)
        log_info("replica %d: slot map epoch %llu from %s", r->cfg.id,
                 (unsigned long long)cluster_current(r->cl)->epoch, from);
    return true;
}

/* FSM: a map entry is installed; false for any other entry. */
static bool map_entry(struct replica *r, const struct raft_buffer *buf)
{
    return map_take(r, buf->base, buf->len, "the log");
}

/* Raft thread: the entry committed (this node's FSM installed it) or not;
 * answered unless map_tick answered already. */
static void map_applied(struct raft_apply *req, int status, void *result)
{
    struct map_req *q = req->data;
    struct replica *r = q->r;
    (void)result;
    r->map_busy = false;
    r->map_q = NULL;
    if (status != 0 && !q->base.answered)
        snprintf(q->base.msg, sizeof q->base.msg, "CLUSTERDOWN outcome unknown: node %d lost the leadership while "
                 "the map change to epoch %llu was being replicated (%s): read the map from the group's new leader "
                 "(spool cluster info; REPLICA.MEMBERS on a member names it) and run the command again if it does "
                 "not show the change", r->cfg.id, (unsigned long long)q->old + 1, raft_strerror(status));
    if (!q->base.answered)
        req_answer(&q->base, status == 0 ? 0 : -ETIMEDOUT);
    map_req_free(q);
}

/* Raft thread, every tick: a map change not committed within REQ_WAIT_MS
 * (a leader cut off from its group) is answered "outcome unknown"; the
 * entry stays in flight until libraft says how it ended (map_applied). */
static void map_tick(struct replica *r)
{
    struct map_req *q = r->map_q;
    if (!q || q->base.answered || mono_us() < q->base.deadline_us)
        return;
    snprintf(q->base.msg, sizeof q->base.msg, "CLUSTERDOWN outcome unknown: the map change to epoch %llu was not "
             "committed within %d s (node %d leads, but a majority of its group did not answer): bring the group's "
             "members back, then read the map (spool cluster info) and run the command again if it does not show "
             "the change", (unsigned long long)q->old + 1, REQ_WAIT_MS / 1000, r->cfg.id);
    req_answer(&q->base, -ETIMEDOUT);
}

/* Raft thread: checks one change against this leader's map and proposes it. */
static int map_start(struct replica *r, struct map_req *q)
{
    char leader[64] = "none known";
    replica_leader_addr(r, leader, sizeof leader);
    const struct cluster_map *cur = r->cl ? cluster_current(r->cl) : NULL;
    uint64_t epoch = cur ? cur->epoch : 0;
    if (!r->cl || raft_state(&r->raft) != RAFT_LEADER || replica_role(r) != REPLICA_LEADER)
        return snprintf(q->base.msg, sizeof q->base.msg, "%s this node does not lead the group that keeps the slot map: send "
                        "it to its leader (%s)", replica_role(r) == REPLICA_FOLLOWER ? "READONLY" : "CLUSTERDOWN",
                        leader), -EAGAIN;
    if (r->map_busy)
        return snprintf(q->base.msg, sizeof q->base.msg, "ERR map conflict: a change to map epoch %llu is being committed; "
                        "this change was made from epoch %llu: read the map again and run the command again",
                        (unsigned long long)r->map_busy_epoch, (unsigned long long)q->old), -ESTALE;
    if (epoch != q->old) {
        char why[300];
        cluster_conflict(epoch, q->old, why, sizeof why);
        return snprintf(q->base.msg, sizeof q->base.msg, "ERR map conflict: %s", why), -ESTALE;
    }
    size_t total;
    struct raft_buffer buf = { map_buffer(q->json, q->len, &total), 0 };
    buf.len = total;
    q->req.data = q;
    int rc = buf.base ? raft_apply(&r->raft, &q->req, &buf, 1, map_applied) : RAFT_NOMEM;
    if (rc != 0) {
        raft_free(buf.base);
        return snprintf(q->base.msg, sizeof q->base.msg, "ERR the map change was not proposed (%s); nothing changed: retry",
                        raft_strerror(rc)), -EIO;
    }
    r->map_busy = true;
    r->map_busy_epoch = q->old + 1;
    r->map_q = q;
    return 1;
}

int replica_map_propose(struct replica *r, uint64_t old, const char *json, size_t len, replica_answer_fn answer,
                        void *arg)
{
    struct map_req *q = calloc(1, sizeof *q);
    char *copy = malloc(len + 1);
    if (!q || !copy) {
        free(q);
        free(copy);
        return -ENOMEM;
    }
    memcpy(copy, json, len);
    *q = (struct map_req){ .base.kind = REQ_MAP, .r = r, .old = old, .json = copy, .len = len };
    req_submit(r, &q->base, answer, arg);
    return 0;
}

/* Raft thread (fsm_snapshot): the map as of the snapshot's index. */
static void map_snap_take(struct replica *r)
{
    const struct cluster_map *m = r->cl ? cluster_current(r->cl) : NULL;
    free(r->map_snap);
    r->map_snap = NULL;
    if (m) {
        char *json = cluster_dump(m);
        r->map_snap = strdup(json);
        cJSON_free(json);
    }
}

/* libraft's worker: the map goes after the shards' images. Always 0. */
static int map_snap_append(struct replica *r, struct raft_buffer **bufs, unsigned *n)
{
    char *json = r->map_snap;
    r->map_snap = NULL;
    if (!json)
        return 0;
    size_t total;
    void *base = map_buffer(json, strlen(json), &total);
    struct raft_buffer *more = base ? realloc(*bufs, (*n + 1) * sizeof **bufs) : NULL;
    free(json);
    if (!more) { /* the snapshot goes without it: the map stays in cluster.json and on the other members */
        raft_free(base);
        log_warn("replica %d: out of memory: a snapshot without the slot map", r->cfg.id);
        return 0;
    }
    more[*n] = (struct raft_buffer){ base, total };
    *bufs = more;
    (*n)++;
    return 0;
}

/* snapshot_finalize: frees the map's buffer; the count snap_release takes. */
static unsigned map_snap_release(struct raft_buffer *bufs, unsigned n, int nshards)
{
    if (bufs && n > (unsigned)nshards + 1) {
        raft_free(bufs[n - 1].base);
        n--;
    }
    return n;
}

/* fsm_restore: the map after the last shard's image, if the snapshot has one. */
static void map_snap_restore(struct replica *r, const struct raft_buffer *buf, const struct snap_part *last)
{
    size_t end = (size_t)((const char *)last->img - (const char *)buf->base) + last->len;
    if (end < buf->len)
        map_take(r, (const char *)buf->base + end, buf->len - end, "a snapshot");
}

/* ------------------------------------------------------------ lifecycle */

static void *replica_main(void *arg)
{
    struct replica *r = arg;
    log_set_thread_name("replica");
    uv_run(&r->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* ----------------------------------------------- TCP without Nagle
 *
 * libraft's TCP transport leaves Nagle's algorithm on. Two appends sent
 * back to back (two shards' turns) then wait for the peer's delayed ACK:
 * about 40 ms stalls, measured as a p99 of 50 ms per push. This wrapper
 * delegates to it and sets TCP_NODELAY on every connection it makes or
 * accepts. */

struct nodelay_connect {
    struct raft_uv_connect req;    /* handed to the TCP transport */
    struct raft_uv_connect *outer; /* raft_uv's request */
};

static void nodelay(struct uv_stream_s *stream)
{
    if (stream && stream->type == UV_TCP)
        uv_tcp_nodelay((uv_tcp_t *)stream, 1);
}

static int nd_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
    struct replica *r = t->impl;
    int rc = r->tcp.init(&r->tcp, id, address);
    memcpy(t->errmsg, r->tcp.errmsg, sizeof t->errmsg);
    return rc;
}

static void nd_accepted(struct raft_uv_transport *tcp, raft_id id, const char *address, struct uv_stream_s *stream)
{
    struct replica *r = tcp->data;
    nodelay(stream);
    r->accept_cb(&r->tr, id, address, stream);
}

static int nd_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    struct replica *r = t->impl;
    r->accept_cb = cb;
    int rc = r->tcp.listen(&r->tcp, nd_accepted);
    memcpy(t->errmsg, r->tcp.errmsg, sizeof t->errmsg);
    return rc;
}

static void nd_connected(struct raft_uv_connect *req, struct uv_stream_s *stream, int status)
{
    struct nodelay_connect *c = req->data;
    if (status == 0)
        nodelay(stream);
    struct raft_uv_connect *outer = c->outer;
    free(c);
    outer->cb(outer, stream, status);
}

static int nd_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id, const char *address,
                      raft_uv_connect_cb cb)
{
    struct replica *r = t->impl;
    struct nodelay_connect *c = calloc(1, sizeof *c);
    if (!c)
        return RAFT_NOMEM;
    req->cb = cb;
    c->outer = req;
    c->req.data = c;
    char raft[64];
    snprintf(raft, sizeof raft, "%.*s", (int)strcspn(address, "/"), address); /* "RAFT/CLIENT": dial RAFT */
    int rc = r->tcp.connect(&r->tcp, &c->req, id, raft, nd_connected);
    if (rc != 0)
        free(c);
    return rc;
}

static void nd_closed(struct raft_uv_transport *tcp)
{
    struct replica *r = tcp->data;
    r->close_cb(&r->tr);
}

static void nd_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    struct replica *r = t->impl;
    r->close_cb = cb;
    r->tcp.close(&r->tcp, nd_closed);
}

static int nodelay_transport_init(struct replica *r)
{
    int rc = raft_uv_tcp_init(&r->tcp, &r->loop);
    if (rc != 0)
        return rc;
    r->tcp.data = r;
    r->tr = (struct raft_uv_transport){ .impl = r, .init = nd_init, .listen = nd_listen, .connect = nd_connect,
                                        .close = nd_close };
    return 0;
}

/* A member's address in the Raft configuration (the "membership" section). */
static void member_addr(const struct peer *p, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", p->raft_addr, p->client_addr);
}

static int bootstrap(struct replica *r, char *err, size_t cap)
{
    if (r->cfg.join)
        return 0; /* the leader adds it; its log starts empty */
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    int rc = 0;
    char addr[140];
    for (int i = 0; i < r->npeers && rc == 0; i++) {
        member_addr(&r->peers[i], addr, sizeof addr);
        rc = raft_configuration_add(&conf, r->peers[i].id, addr, RAFT_VOTER);
    }
    if (rc == 0)
        rc = raft_bootstrap(&r->raft, &conf);
    raft_configuration_close(&conf);
    if (rc == 0 || rc == RAFT_CANTBOOTSTRAP) /* CANTBOOTSTRAP: the log exists already */
        return 0;
    snprintf(err, cap, "replica: cannot bootstrap the group in %s: %s", r->raft_dir, raft_strerror(rc));
    return -EIO;
}

/* The replica whose raft_io io is (its transport callbacks get only io). */
static struct replica *replica_of_io(struct raft_io *io)
{
    return (struct replica *)((char *)io - offsetof(struct replica, io));
}

/* libraft 0.15 answers an InstallSnapshot once the snapshot is stored
 * (installSnapshotCb) whatever this node became in the meantime, to
 * follower_state.current_leader, a member of a union. A voter that takes
 * in a large snapshot under load can miss the leader's heartbeats and turn
 * candidate before it is stored: the answer's address is then the
 * candidate's fields (0x100 with in_pre_vote set, NULL without), the
 * leader's (promotee_id), or NULL for a follower that knows no leader, and
 * raft_uv's strlen of it kills the Raft thread. Such an answer goes
 * nowhere anyway: it is dropped (libraft frees it; the leader learns the
 * node's log from its next answer to a heartbeat). An answer of a
 * candidate or leader to a stale leader carries that leader's real address
 * and passes. */
bool replica_answer_misaddressed(const struct raft *raft, const struct raft_message *m)
{
    if (m->type != RAFT_IO_APPEND_ENTRIES_RESULT)
        return false;
    if (!m->server_address)
        return true;
    return raft->state != RAFT_FOLLOWER && m->server_id == raft->follower_state.current_leader.id &&
           m->server_address == raft->follower_state.current_leader.address;
}

static int guarded_send(struct raft_io *io, struct raft_io_send *req, const struct raft_message *m, raft_io_send_cb cb)
{
    struct replica *r = replica_of_io(io);
    if (replica_answer_misaddressed(&r->raft, m)) {
        int st = raft_state(&r->raft);
        log_info("replica %d: an answer to a snapshot install stored after this node stopped following (now %s) "
                 "is dropped", r->cfg.id, st == RAFT_CANDIDATE ? "a candidate" : st == RAFT_LEADER ? "the leader"
                 : st == RAFT_FOLLOWER ? "a follower of no known leader" : "stopping");
        return RAFT_NOCONNECTION;
    }
    return r->uv_send(io, req, m, cb);
}

/* Every message libraft receives passes here first: when each node was
 * last heard from (heard_ago_ms), on the Raft thread. */
static void heard_recv(struct raft_io *io, struct raft_message *msg)
{
    struct replica *r = replica_of_io(io);
    if (msg->server_id < sizeof r->heard_us / sizeof r->heard_us[0])
        r->heard_us[msg->server_id] = mono_us();
    r->raft_recv(io, msg);
}

static int heard_start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick, raft_io_recv_cb recv)
{
    struct replica *r = replica_of_io(io);
    r->raft_recv = recv;
    return r->uv_start(io, msecs, tick, heard_recv);
}

static int init_raft(struct replica *r, char *err, size_t cap)
{
    const struct peer *me = peer_by_id(r, (unsigned)r->cfg.id);
    r->fsm = (struct raft_fsm){ .version = 3, .data = r, .apply = apply_entry, .snapshot = fsm_snapshot,
                                .restore = fsm_restore, .snapshot_finalize = fsm_snapshot_finalize,
                                .snapshot_async = fsm_snapshot_async };
    int rc = uv_loop_init(&r->loop) != 0 || nodelay_transport_init(r) != 0 ||
             raft_uv_init(&r->io, &r->loop, r->raft_dir, &r->tr) != 0;
    r->io.version = 2; /* raft_uv 0.15 has async_work, which snapshot_async needs, but calls itself version 1 */
    r->uv_start = r->io.start;
    r->io.start = heard_start;
    r->uv_send = r->io.send;
    r->io.send = guarded_send;
    char addr[140];
    member_addr(me, addr, sizeof addr);
    if (rc || raft_uv_tcp_set_bind_address(&r->tcp, me->raft_addr) != 0 ||
        raft_init(&r->raft, &r->io, &r->fsm, me->id, addr) != 0) {
        snprintf(err, cap, "replica: cannot set up Raft in %s: %s", r->raft_dir, raft_errmsg(&r->raft));
        return -EIO;
    }
    r->raft.data = r;
    if (bootstrap(r, err, cap) < 0)
        return -EIO;
    raft_set_election_timeout(&r->raft, (unsigned)r->cfg.election_ms);
    raft_set_heartbeat_timeout(&r->raft, (unsigned)(r->cfg.election_ms / 10));
    if (r->cfg.catch_up_round_ms > 0) /* else libraft's own (5 s) */
        raft_set_max_catch_up_round_duration(&r->raft, (unsigned)r->cfg.catch_up_round_ms);
    raft_set_snapshot_threshold(&r->raft, r->cfg.snapshot_entries);
    raft_set_snapshot_trailing(&r->raft, r->cfg.snapshot_trailing);
    /* Pre-vote (Raft thesis 9.6): a node that misses heartbeats while it
     * receives a large snapshot, or a removed node left running, asks
     * before it raises the term, and is refused while its log is behind:
     * it does not depose a working leader. */
    raft_set_pre_vote(&r->raft, true);
    return 0;
}

/* After replica_attach: loads the log (a snapshot in it is queued for the
 * shards at once) and starts the Raft thread. */
int replica_run(struct replica *r, char *err, size_t cap)
{
    int rc = raft_start(&r->raft);
    if (rc != 0) {
        /* libraft's errmsg says why the log did not load; it stays empty when the
         * transport cannot listen on the Raft address (another process holds it) */
        if (raft_errmsg(&r->raft)[0])
            snprintf(err, cap, "replica: cannot start Raft (data %s): %s", r->raft_dir, raft_errmsg(&r->raft));
        else
            snprintf(err, cap, "replica: cannot start Raft (data %s): %s (is its Raft address %s taken by another "
                     "process?)", r->raft_dir, raft_strerror(rc), peer_by_id(r, (unsigned)r->cfg.id)->raft_addr);
        return -EIO;
    }
    uv_async_init(&r->loop, &r->async, on_async);
    uv_timer_init(&r->loop, &r->tick);
    r->async.data = r->tick.data = r;
    r->handles = true;
    uv_timer_start(&r->tick, on_tick, TICK_MS, TICK_MS);
    if (pthread_create(&r->thread, NULL, replica_main, r) != 0) {
        snprintf(err, cap, "replica: cannot start its thread");
        return -EAGAIN;
    }
    r->running = true;
    return 0;
}

int replica_start(struct replica **out, const struct replica_cfg *cfg, char *err, size_t cap)
{
    struct replica *r = calloc(1, sizeof *r);
    if (!r || !(r->slots = calloc((size_t)cfg->nshards, sizeof *r->slots))) {
        free(r);
        snprintf(err, cap, "replica: out of memory");
        return -ENOMEM;
    }
    r->cfg = *cfg;
    snprintf(r->data_dir, sizeof r->data_dir, "%s", cfg->data_dir);
    snprintf(r->raft_dir, sizeof r->raft_dir, "%s/raft", cfg->data_dir);
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->view_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* replica_change waits against the monotonic clock */
    pthread_cond_init(&r->change_cv, &ca);
    pthread_condattr_destroy(&ca);
    if (getrandom(&r->nonce, sizeof r->nonce, 0) != (ssize_t)sizeof r->nonce)
        r->nonce = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    int rc = parse_peers(r, err, cap);
    if (rc == 0 && !(r->snap = snap_taker_new(cfg->nshards, cfg->snapshot_max_bytes))) {
        snprintf(err, cap, "replica: out of memory");
        rc = -ENOMEM;
    }
    if (rc == 0 && mkdir(r->raft_dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, cap, "replica: cannot create %s: %s", r->raft_dir, strerror(errno));
        rc = -errno;
    }
    if (rc == 0)
        rc = init_raft(r, err, cap);
    if (rc < 0) {
        snap_taker_free(r->snap);
        free(r->slots);
        free(r); /* what init_raft set up leaks on this path: the process is stopping */
        return rc;
    }
    *out = r;
    return 0;
}

void replica_stop(struct replica *r)
{
    if (!r)
        return;
    if (r->running) {
        snap_cancel(r->snap); /* a snapshot waiting for the shards (stopped by now) gives up */
        pthread_mutex_lock(&r->mu);
        r->stopping = true;
        pthread_mutex_unlock(&r->mu);
        uv_async_send(&r->async);
        pthread_join(r->thread, NULL);
    } else { /* start-up failed after replica_start (raft_start, say): Raft closes on this thread */
        log_info("replica %d: its Raft thread never ran; closing Raft", r->cfg.id);
        r->stopping = true;
        r->closed = true;
        if (r->handles) {
            uv_close((uv_handle_t *)&r->tick, NULL);
            uv_close((uv_handle_t *)&r->async, NULL);
        }
        raft_close(&r->raft, raft_closed);
    }
    uv_run(&r->loop, UV_RUN_DEFAULT);
    uint64_t n = atomic_load(&r->proposed_count), bytes = atomic_load(&r->proposed_bytes);
    log_info("replica %d: stopped; it proposed %" PRIu64 " turn(s) (%" PRIu64 " bytes, %.0f per entry) and applied %"
             PRIu64 " from the log", r->cfg.id, n, bytes, n ? (double)bytes / (double)n : 0.0,
             atomic_load(&r->applied_count));
    if (uv_loop_close(&r->loop) != 0)
        log_warn("replica %d: its event loop still had handles at exit", r->cfg.id);
    for (int k = 0; k < r->cfg.nshards; k++) { /* not applied: the log still holds them */
        free_list(r->slots[k].in_head);
        free_list(r->slots[k].flight);
        free_list(r->slots[k].kept_head);
    }
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->view_mu);
    pthread_cond_destroy(&r->change_cv);
    snap_taker_free(r->snap);
    free(r->map_snap);
    free(r->slots);
    free(r);
}
