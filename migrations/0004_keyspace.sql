-- 0004_keyspace.sql - the keyspace beside the queues: strings, hashes and
-- sorted sets (broker/keyspace.c, written by broker/kvjournal.c).
--
-- One kv row per key: its type and absolute expiry (Unix ms, 0 = none), and
-- for a string its value. A hash keeps one kv_hash row per field, a sorted
-- set one kv_zset row per member, so a change writes only what changed.
-- Keys, fields, members and values are binary-safe, hence BLOB.

CREATE TABLE kv (
    key       BLOB    PRIMARY KEY,
    type      INTEGER NOT NULL,            -- 1 string, 2 hash, 3 sorted set
    expire_at INTEGER NOT NULL DEFAULT 0,
    value     BLOB                         -- strings only
) WITHOUT ROWID;

-- Keys that expire, so the start-up sweep finds them without a full scan.
CREATE INDEX kv_expire ON kv (expire_at) WHERE expire_at > 0;

CREATE TABLE kv_hash (
    key   BLOB NOT NULL,
    field BLOB NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (key, field)
) WITHOUT ROWID;

CREATE TABLE kv_zset (
    key    BLOB NOT NULL,
    member BLOB NOT NULL,
    score  REAL NOT NULL,
    PRIMARY KEY (key, member)
) WITHOUT ROWID;
