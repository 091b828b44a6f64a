-- 0009_payload_file.sql - payloads at or above --payload-file-min live in
-- the shard's payload log (broker/paylog.h: data-dir/shard-<k>.payload.<n>),
-- written once; their payloads row holds where instead of the body.
--
-- A row with seg NULL keeps its body here as before (small payloads, and
-- every payload when the payload file is off or the node is replicated).
-- A row with seg set has an empty body; the record starts at byte off of
-- segment seg and its body is len bytes with CRC32C crc.

ALTER TABLE payloads ADD COLUMN seg INTEGER;
ALTER TABLE payloads ADD COLUMN off INTEGER;
ALTER TABLE payloads ADD COLUMN len INTEGER;
ALTER TABLE payloads ADD COLUMN crc INTEGER;
