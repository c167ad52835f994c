-- Which turns of an ingest batch clash with the lake: the same content_hash (the same record re-sent: a
-- duplicate) or the same turn_id (conversation id + turn index) with another content_hash (a duplicate only if
-- it is the same exchange, which the ingest decides with ingest/turn_holders.sql). Run inside the lake's write
-- transaction, so the answer stays true until the batch is committed.
-- Parameters: $files (list of turns Parquet files to check against; the batch is registered as `batch` with
-- columns i, turn_id, content_hash).
-- Output columns: i (batch row), by_content (true: same content_hash; false: same turn_id). A row may come twice.
WITH lake AS MATERIALIZED (SELECT turn_id, content_hash FROM read_parquet($files))
SELECT i, true AS by_content FROM batch WHERE content_hash IN (SELECT content_hash FROM lake)
UNION ALL
SELECT i, false AS by_content FROM batch WHERE turn_id IN (SELECT turn_id FROM lake);
