-- 0001_init.sql - a shard's journal: its jobs, its queue settings, metadata.
--
-- Every column maps one field of struct job / struct queue (broker/queue.h);
-- journal.c writes them field by field. Times are Unix milliseconds. Queue
-- names, payloads and unique keys are binary-safe, hence BLOB.

CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY,        -- the 64-bit job id (< 2^63); names its shard
    queue       BLOB    NOT NULL,
    state       INTEGER NOT NULL,           -- enum job_state: 0 ready, 1 reserved, 2 delayed, 3 done, 4 dead
    pos         INTEGER NOT NULL DEFAULT 0, -- order in the ready list, ascending left to right
    priority    INTEGER NOT NULL DEFAULT 0, -- higher is served first
    attempt     INTEGER NOT NULL DEFAULT 0, -- deliveries so far
    retries     INTEGER NOT NULL DEFAULT 0, -- retries allowed after the first attempt
    lease_ms    INTEGER NOT NULL DEFAULT 0,
    run_at      INTEGER NOT NULL DEFAULT 0,
    lease_until INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    payload     BLOB    NOT NULL,
    last_error  TEXT,                       -- NULL: none
    uniq        BLOB                        -- the UNIQUE key; NULL: none
);

-- Recovery reads every job in (queue, state, priority, pos, id) order. SQLite
-- appends the rowid (id) to every index, so this index serves that ORDER BY
-- with no sort step.
CREATE INDEX jobs_load ON jobs (queue, state, priority, pos);

-- Queues that have settings other than the defaults or are paused.
CREATE TABLE queues (
    name   BLOB    PRIMARY KEY,
    config TEXT    NOT NULL DEFAULT '',    -- qconf_format(): "name value name value ..."
    paused INTEGER NOT NULL DEFAULT 0
);

-- Key/value metadata, e.g. "shards" in shard-0.db.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
