-- Which turns of a scoring batch already have a score of the same classifier identity in some scores files: those
-- committed by another run of the score job after this run read the lake (the worker's and a `monitor jobs run`
-- at once), so a turn is never scored twice. Run inside the lake's write transaction, like existing_turns.sql.
-- Parameters: $files (list of scores Parquet files), $refusal_version, $harm_version, $backend (the identity);
-- the batch is registered as `batch` with column turn_id.
-- Output columns: turn_id (distinct).
SELECT DISTINCT s.turn_id
FROM read_parquet($files, union_by_name = true) AS s
WHERE s.refusal_version = $refusal_version
  AND s.harm_version = $harm_version
  AND s.backend = $backend
  AND s.turn_id IN (SELECT turn_id FROM batch)
