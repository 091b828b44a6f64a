-- 0010_inline_body.sql - a small payload lives in its job's own row.
--
-- 0007 moved payloads to their own table so that a state change does not
-- write the payload again. For a small payload that costs more than it
-- saves: a push inserted two rows and an ack deleted two, each a b-tree
-- walk on the shard thread, while a few hundred bytes more in the job row
-- add nothing to the 4 KiB WAL pages a state change writes anyway.
--
-- body NULL: the payload is in payloads, as before (its body there, or in
-- the payload file when seg is set). body set: the payload is this blob
-- and the job has no payloads row. journal.c decides at insert
-- (JOURNAL_INLINE_MAX); rows written before 0010 keep their payloads row.

ALTER TABLE jobs ADD COLUMN body BLOB;
