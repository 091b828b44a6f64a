-- 0003_drop_load_index.sql - one B-tree less on every job change.
--
-- jobs_load kept rows in (queue, state, priority, pos) order for recovery,
-- but every push, reserve, ack and retry changes state or pos, so every one
-- of them rewrote an index entry too. Recovery now reads jobs in id (rowid)
-- order, a sequential scan, and sorts the ready lists in memory.

DROP INDEX IF EXISTS jobs_load;
