-- 0008_slot_parked.sql - slots on their way to another group (docs/cluster.md,
-- "Moving slots"; broker/cluster_move.c).
--
-- SLOTMOVE EXPORT takes everything a slot holds (queues, jobs in every state,
-- schedules, keys) out of the shard's live tables in one transaction and keeps
-- it here as one blob, so that a crash of the mover or of either node loses
-- nothing: a re-run move exports the same blob again. SLOTMOVE DROP deletes the
-- row once the target owns the slot; SLOTMOVE RESTORE takes it back into the
-- live tables when a move is given up.

CREATE TABLE slot_parked (
    slot INTEGER PRIMARY KEY,   -- 0..16383; a slot lives on shard slot % shards
    blob BLOB    NOT NULL       -- cluster_move.h's format 1
);
