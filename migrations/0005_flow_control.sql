-- 0005_flow_control.sql - what flow control keeps per job (issue 17;
-- broker/flow.h, docs/protocol.md "Flow control").
--
-- expires_at: Unix ms after which the job is never delivered (state 5,
-- expired); 0 = never. grp: the GROUP key (NULL = the default group).
-- holder: who holds a reserved job, "name addr id" of the connection that
-- reserved it (NULL when not reserved or unknown). history: the failed
-- attempts, newest last, as lines "attempt<TAB>unix-ms<TAB>holder<TAB>error"
-- (at most 25; NULL = none). Queue limits (rate, concurrency, expires,
-- group-*) live in queues.config like every other setting.

ALTER TABLE jobs ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN grp        BLOB;
ALTER TABLE jobs ADD COLUMN holder     TEXT;
ALTER TABLE jobs ADD COLUMN history    TEXT;
