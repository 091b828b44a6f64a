-- 0004_keyspace.sql - the keyspace beside the queues: strings, hashes and
-- sorted sets (broker/keyspace.c, written by broker/kvjournal.c).
--
-- An append-only log of changes, replayed in seq order at start. Appending
-- writes one page per transaction however scattered the keys are (updating
-- rows in place would write one B-tree page per key), and the log is
-- rewritten as a snapshot of the live keys once it has grown to twice that
-- size (kvjournal_clear, then one row per key, field and member).
--
-- op: 1 key created (a hash or sorted set starts empty: fields logged
-- before it are gone), 2 key changed (type, expiry, a string's value),
-- 3 key deleted, 4 hash field set (name, value), 5 hash field deleted,
-- 6 sorted-set member set (name, score), 7 member deleted. Times are Unix
-- milliseconds (expire_at 0 = none). Keys, names and values are
-- binary-safe, hence BLOB.

CREATE TABLE kv_log (
    seq       INTEGER PRIMARY KEY,
    op        INTEGER NOT NULL,
    key       BLOB    NOT NULL,
    type      INTEGER NOT NULL DEFAULT 0,  -- 1 string, 2 hash, 3 sorted set (ops 1, 2)
    expire_at INTEGER NOT NULL DEFAULT 0,  -- ops 1, 2
    name      BLOB,                        -- field or member (ops 4-7)
    value     BLOB,                        -- string value (ops 1, 2) or field value (op 4)
    score     REAL                         -- op 6
);
