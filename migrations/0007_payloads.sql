-- 0007_payloads.sql - a payload is written once, at push; receipts carry
-- a token of their delivery.
--
-- SQLite rewrites a whole row when one column changes, overflow pages
-- included, so with the payload in jobs every reserve, ack, nack and retry
-- wrote the payload again (with 64 KiB payloads: 4.3x the payload at
-- reserve, 3.3x at ack). Payloads move to their own table, keyed by the
-- job id: a state change now writes only the job's small row; a payload
-- row is written at push and deleted with its job.

CREATE TABLE payloads (
    id   INTEGER PRIMARY KEY,   -- the job's id (jobs.id)
    body BLOB    NOT NULL
);

INSERT INTO payloads (id, body) SELECT id, payload FROM jobs;

ALTER TABLE jobs DROP COLUMN payload;

-- The token of a job's current delivery, part of its receipt
-- ("<id>-<delivery>-<token>"): a JOB.RESERVE is answered before its commit
-- is on disk, so a delivery lost in a crash is made again under the same
-- delivery number after the restart; the new random token tells the two
-- apart. 0: delivered before receipts carried a token.
ALTER TABLE jobs ADD COLUMN token INTEGER NOT NULL DEFAULT 0;
