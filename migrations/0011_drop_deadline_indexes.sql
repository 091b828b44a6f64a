-- 0011_drop_deadline_indexes.sql - two B-trees less on every job change.
--
-- 0002 added jobs_lease and jobs_run_at for a sweep of due deadlines by
-- query. No statement ever read them: recovery reads every job in id
-- (rowid) order and the shard keeps its deadlines in memory (timer wheel),
-- while every push still opened both indexes, every reserve inserted an
-- entry into jobs_lease and every ack, nack and retry deleted one.
-- An operator who wants them on a copy of a journal can create them there.

DROP INDEX IF EXISTS jobs_lease;
DROP INDEX IF EXISTS jobs_run_at;
