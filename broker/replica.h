/*
 * replica.h - a replication group: the shards' journals replicated by Raft
 * (libraft, the Raft library under dqlite; docs/cluster.md "Replication").
 *
 * One Raft group per spoold process (--replica-id, --replica-peers); it
 * runs on a thread of its own (a libuv loop). What a leader's shard
 * changed becomes Raft entries: SQLite changesets (the session extension
 * records them on the shard's connection). A shard has at most one entry
 * in flight and does not wait for it: its turns go on in the same open
 * transaction, their replies held back; when the entry commits
 * (replica_poll, after the Raft thread's wake-up message) its replies go,
 * and what the turns since changed is the next entry. The shard commits
 * its journal only when the group holds everything in the transaction
 * (replica_commit), so the journal is always a committed prefix of the
 * log; replica_hold makes that happen every few entries or milliseconds.
 * Followers apply committed entries to their own shard databases (the
 * Raft thread hands each to its shard thread, which owns the connection),
 * so their journals stay warm; a promoted leader's shards rebuild memory
 * from them (shard.c, replica_gate).
 *
 * Each shard database keeps the index of the last entry it holds in a table
 * of its own (spool_replica), written in the same transaction, so a
 * restarted node applies exactly the entries it lacks.
 *
 * Roles, as the I/O threads and the shards see them (atomics):
 *   REPLICA_LEADER    Raft leader, and every entry of earlier terms is
 *                     applied (a barrier committed): serves.
 *   REPLICA_FOLLOWER  another node leads (replica_leader_addr says which).
 *   REPLICA_ELECTING  no leader known: writes are refused.
 */
#ifndef SPOOL_REPLICA_H
#define SPOOL_REPLICA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct journal;
struct replica;

enum { REPLICA_ELECTING, REPLICA_FOLLOWER, REPLICA_LEADER };

#define REPLICA_MAX_PEERS 7

struct replica_cfg {
    int id;                 /* this node's id, 1..REPLICA_MAX_PEERS members */
    const char *peers;      /* "1=host:raftport/host:port,2=…": Raft and client address of each member */
    const char *data_dir;   /* shard-<k>.db live here; the Raft log under <data_dir>/raft */
    int nshards;
    int election_ms;        /* Raft election timeout (heartbeat: a tenth of it) */
    int catch_up_round_ms;  /* longest catch-up round of a joining node before the leader starts another */
    unsigned snapshot_entries;  /* a snapshot every this many applied entries (log compaction) */
    unsigned snapshot_trailing; /* entries kept in the log before a snapshot's index */
    size_t snapshot_max_bytes;  /* no snapshot larger than this (it is held in memory) */
    int snapshot_timeout_ms;    /* how long a snapshot waits for every shard's journal */
    bool join;              /* a new member of a running group: no bootstrap; the leader adds it (REPLICA.ADD) */
    /* Called on the Raft thread when the role changed (server.c wakes the
     * shards with it, so a promoted shard rebuilds at once). */
    void (*wake)(void *arg);
    /* Called on the Raft thread: shard k has entries to apply and must run
     * replica_apply_pending (server.c posts it a message). */
    void (*apply)(void *arg, int shard);
    void *wake_arg;
};

/* Parses the peers and opens the Raft log. On error returns a negative
 * errno and writes why into err. */
int replica_start(struct replica **out, const struct replica_cfg *cfg, char *err, size_t cap);
/* After replica_attach of every shard: loads the log and starts the Raft
 * thread (a snapshot in the log is queued for the shards at once). */
int replica_run(struct replica *r, char *err, size_t cap);
/* Stops the thread and frees r (after the shards stopped); also when a
 * start-up step after replica_start failed (the Raft thread never ran). */
void replica_stop(struct replica *r);

struct raft;
struct raft_message;
/* Raft thread: is m an answer libraft addresses from the wrong member of
 * its state union (a snapshot install stored after this node stopped
 * following, replica.c)? Such an answer is dropped, not sent. */
bool replica_answer_misaddressed(const struct raft *raft, const struct raft_message *m);

int replica_role(const struct replica *r);
/* The role and the count of role changes, read together; a shard that
 * sees the count move rebuilds (leader) or goes passive. */
int replica_role_epoch(const struct replica *r, uint64_t *epoch);
/* The client address ("host:port") of the current leader; false if none known. */
bool replica_leader_addr(const struct replica *r, char *buf, size_t cap);
/* The error a node that does not lead gives a command on slot: "MOVED
 * <slot> <leader>" or "CLUSTERDOWN …" (no leader: an election runs). */
void replica_refusal(const struct replica *r, int slot, char *buf, size_t cap);

/* Shard thread k, once, before its first turn: records changes on the
 * shard's connection from now on. */
int replica_attach(struct replica *r, int shard, struct journal *jr);
/* Shard thread k, transaction open, no entry in flight: proposes what the
 * transaction changed since the last entry. 0: proposed, in flight (its
 * replies wait for replica_poll); 1: nothing to propose (every change is
 * in a committed entry: replica_commit may commit). Negative: nothing of
 * it was stored (why holds the client's error: -EAGAIN this node does not
 * lead; -EIO, -ENOMEM); the caller fails those replies and calls
 * replica_rollback. */
int replica_propose(struct replica *r, int shard, struct journal *jr, char *why, size_t cap);
/* Shard thread k, after replica_propose: the fate of the entry in flight.
 * 1: still in flight; 0: committed by the group (or none in flight): its
 * replies may go; -ETIMEDOUT: outcome unknown (leadership was lost),
 * -EAGAIN: not proposed after all; why holds the client's error, and the
 * caller calls replica_rollback. */
int replica_poll(struct replica *r, int shard, char *why, size_t cap);
/* Shard thread k, right after proposing: should it take no new turn until
 * the entry in flight commits (then commit its journal)? True after
 * several entries or milliseconds in one transaction. */
bool replica_hold(const struct replica *r, int shard);
/* Shard thread k, nothing in flight and nothing left to propose: records
 * the last committed entry's index in the transaction and commits it
 * (the process stops if that fails: the group holds those entries, and a
 * restart applies them from the log). */
void replica_commit(struct replica *r, int shard, struct journal *jr);
/* Shard thread k: rolls the open transaction back and applies again the
 * shard's entries the group committed (an entry still in flight is given
 * up: if it commits, it is applied like another node's), then commits.
 * Returns how many it applied. Memory must then be rebuilt. */
int replica_rollback(struct replica *r, int shard, struct journal *jr);
/* Shard thread k, at the start of each turn (cfg.apply posts it a message
 * to start one): applies the committed entries the Raft thread queued for
 * it, in order (a follower's journal stays warm this way); returns how
 * many. A leader gets one only for its own turn given up as "outcome
 * unknown" that committed after all: it must reload its memory. */
int replica_apply_pending(struct replica *r, int shard, struct journal *jr);
/* Has shard k entries of others waiting for replica_apply_pending? */
bool replica_pending(struct replica *r, int shard);
/* Shard thread k, at the start of each turn after replica_apply_pending:
 * hands the journal over if a snapshot waits for it (replica_snap.h). */
void replica_snap_turn(struct replica *r, int shard, struct journal *jr);
/* Shard thread k, before its journal closes. */
void replica_detach(struct replica *r, int shard);

/* Membership (docs/replication.md "Membership"): the members as this node
 * last saw them in the log (any thread). */
enum { REPLICA_VOTER, REPLICA_STANDBY, REPLICA_SPARE };
struct replica_member {
    unsigned id;
    int role;              /* REPLICA_VOTER, _STANDBY (copies the log) or _SPARE (joining) */
    bool leader;
    char raft_addr[64], client_addr[64];
    uint64_t match_index;  /* on the leader: the last entry the member holds */
    int64_t heard_ms;      /* ms since this node last heard from the member (-1: never, or itself) */
};
/* Copies up to cap members into out (returns how many) and the last
 * change's state into status ("none", "in progress: …", "done: …",
 * "failed: …"). */
int replica_members(const struct replica *r, struct replica_member *out, int cap, char *status, size_t scap);
/* How the Raft thread answers a request another thread handed it (a
 * membership change, a transfer, a map change): answer(arg, rc, msg), once,
 * called on the Raft thread; rc is 0 or negative, msg the client's words
 * (an error with its prefix: ERR, READONLY, CLUSTERDOWN). The asking
 * thread does not wait: an I/O thread's answer posts the reply to it
 * (cmd_replica.c, replica_await). The request functions return 0, or
 * -ENOMEM (nothing was handed over, answer is not called). */
typedef void (*replica_answer_fn)(void *arg, int rc, const char *msg);

/* Asks the leader's Raft thread to add (REPLICA_ADD, with its Raft and
 * client addresses) or remove (REPLICA_REMOVE) member id. Answered 0 once
 * the change started (replica_members shows how it ends); negative when
 * refused (not the leader, a change in flight, a bad id). */
enum { REPLICA_ADD, REPLICA_REMOVE };
int replica_change(struct replica *r, int op, unsigned id, const char *raft_addr, const char *client_addr,
                   replica_answer_fn answer, void *arg);

/* Leadership transfer (docs/replication.md "Planned restart"), any thread
 * but the Raft thread; answered when it is over (a few election timeouts at
 * most). On the leader: hands the leadership to member id (0: the follower
 * up to date that holds the most of the log). Proposals stop until the
 * entries in flight settle (a write meanwhile is refused, "not stored"),
 * then libraft brings the target up to date and it starts its election.
 * 0 with "node N leads the group now (host:port)" in msg; negative with
 * the client's error in msg (not the leader, target not up to date, no
 * follower up to date, not taken over in time: this node still leads). */
int replica_transfer(struct replica *r, unsigned id, replica_answer_fn answer, void *arg);
/* The stop sequence (server.c, SIGTERM/SIGINT), before anything stops: a
 * leader hands the leadership over (replica_transfer), bounded; the
 * outcome is logged. Nothing on a follower. */
void replica_handover(struct replica *r);

/* The slot map's entries (cluster mode, docs/cluster.md "The slot map"):
 * the map's first group keeps the map in its Raft log, one entry per
 * change, and in each snapshot. replica_map_attach: before replica_run;
 * committed map entries are installed into cl (cluster_take_committed). */
struct cluster;
void replica_map_attach(struct replica *r, struct cluster *cl);
/* Any thread: the leader proposes json as the map that follows epoch old
 * (a compare-and-set: refused unless this node's map has epoch old and no
 * other change is in flight). Answered 0 once the group committed it and
 * this node installed it, or negative: -EAGAIN not the leader
 * (READONLY/CLUSTERDOWN, naming the leader), -ESTALE another change came
 * first (naming both epochs), -ETIMEDOUT outcome unknown (leadership lost,
 * or not committed within 10 s), -EIO, -ESHUTDOWN. */
int replica_map_propose(struct replica *r, uint64_t old, const char *json, size_t len, replica_answer_fn answer,
                        void *arg);

/* Figures for INFO replication (any thread). */
struct replica_figures {
    uint64_t applied_index;  /* the last log entry the FSM saw */
    uint64_t applied;        /* entries of others applied to the journals */
    uint64_t queued;         /* entries waiting for their shard to apply them */
    uint64_t proposed;       /* turns this node proposed as a leader */
    uint64_t proposed_bytes;
    uint64_t commit_wait_us;  /* mean time from proposing an entry to its shard seeing it committed */
    uint64_t journal_commits; /* journal transactions committed as a leader (several entries each) */
    uint64_t snapshots, snapshots_failed, snapshot_index, snapshot_bytes, snapshot_ms, snapshot_total_ms,
        snapshots_restored;
};
void replica_figures(const struct replica *r, struct replica_figures *f);

#endif
