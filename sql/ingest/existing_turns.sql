-- Which turns of an ingest batch are already in the lake: same turn_id (conversation id + turn index) or same
-- content_hash (the same record re-sent). Run inside the lake's write transaction, so the answer stays true
-- until the batch is committed.
-- Parameters: $files (list of turns Parquet files to check against; the batch is registered as `batch` with
-- columns i, turn_id, content_hash).
-- Output columns: i (row number of each batch row that is a duplicate).
WITH lake AS MATERIALIZED (SELECT turn_id, content_hash FROM read_parquet($files))
SELECT i FROM batch WHERE turn_id IN (SELECT turn_id FROM lake)
UNION
SELECT i FROM batch WHERE content_hash IN (SELECT content_hash FROM lake);
