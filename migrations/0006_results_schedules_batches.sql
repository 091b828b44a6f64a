-- 0006_results_schedules_batches.sql - job results and progress, durable
-- schedules, and batches with their cross-shard counting (issue 18).
--
-- jobs.result / jobs.progress: JOB.ACK … RESULT and JOB.PROGRESS values;
-- jobs.batch: the batch a job counts in (0: none, or already counted).
-- Written by broker/jext.c next to journal.c's own row writes, in the same
-- transaction of the turn.

ALTER TABLE jobs ADD COLUMN result BLOB;
ALTER TABLE jobs ADD COLUMN progress BLOB;
ALTER TABLE jobs ADD COLUMN batch INTEGER NOT NULL DEFAULT 0;

-- Recovery reads only the jobs that carry one of them.
CREATE INDEX jobs_extra ON jobs (id) WHERE result IS NOT NULL OR progress IS NOT NULL OR batch != 0;

-- Schedules live on the shard of their target queue, so that a tick's push
-- and the schedule's next_at/last_tick commit in one transaction.
CREATE TABLE schedules (
    name       BLOB    PRIMARY KEY,
    queue      BLOB    NOT NULL,
    spec       TEXT    NOT NULL,            -- cron (5 or 6 fields), @hourly…, @every 15m
    payload    BLOB    NOT NULL,
    tz         TEXT    NOT NULL DEFAULT 'UTC',
    priority   INTEGER NOT NULL DEFAULT 0,
    retries    INTEGER NOT NULL DEFAULT -1, -- -1: the queue's default
    uniq       INTEGER NOT NULL DEFAULT 0,  -- 1: skip a tick while the last job is unfinished
    catchup    INTEGER NOT NULL DEFAULT 1,  -- 0 none, 1 one, 2 all
    paused     INTEGER NOT NULL DEFAULT 0,
    next_at    INTEGER NOT NULL,            -- unix ms of the next tick
    last_tick  INTEGER NOT NULL DEFAULT 0,  -- unix ms of the last tick handled (pushed or skipped)
    last_job   INTEGER NOT NULL DEFAULT 0,  -- id of the last job pushed
    runs       INTEGER NOT NULL DEFAULT 0,  -- jobs pushed
    skipped    INTEGER NOT NULL DEFAULT 0,  -- ticks skipped (catch-up or UNIQUE)
    created_at INTEGER NOT NULL
);

-- Batches live on their home shard (the low bits of the batch id).
CREATE TABLE batches (
    id          INTEGER PRIMARY KEY,
    state       INTEGER NOT NULL DEFAULT 0, -- 0 open, 1 closed, 2 finished
    total       INTEGER NOT NULL DEFAULT 0, -- jobs added (counted from their shards' notes)
    done        INTEGER NOT NULL DEFAULT 0,
    dead        INTEGER NOT NULL DEFAULT 0, -- dead or deleted before finishing
    fired       INTEGER NOT NULL DEFAULT 0, -- callbacks sent: 1 success, 2 complete, 4 death
    on_success  BLOB,                       -- "queue\0payload", NULL: none
    on_complete BLOB,
    on_death    BLOB,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- Notes from this shard to another one (batch counting, callback pushes),
-- written in the transaction of the change they report, sent after the
-- commit, resent after a restart or on request, deleted once the other
-- shard confirmed them. Seqs count 1, 2, 3, ... per destination shard.
CREATE TABLE batch_outbox (
    dest    INTEGER NOT NULL,               -- shard it goes to
    seq     INTEGER NOT NULL,               -- per destination, without gaps
    kind    INTEGER NOT NULL,               -- batch.c enum note_kind
    batch   INTEGER NOT NULL,
    queue   BLOB,                           -- callback push: target queue
    payload BLOB,                           -- callback push: payload
    PRIMARY KEY (dest, seq)
);

-- Per destination shard, the last seq given to a note (rows of the outbox
-- are deleted once confirmed, so it is kept here).
CREATE TABLE batch_seq (
    dest INTEGER PRIMARY KEY,
    seq  INTEGER NOT NULL
);

-- Per source shard, the last note applied here: a note applies only when
-- its seq is the next one; lower seqs are duplicates of a resend, higher
-- ones mean a note was lost in a failed turn, and the source is asked to
-- send its outbox again.
CREATE TABLE batch_inbox (
    src INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL
);
