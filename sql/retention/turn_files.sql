-- Which files of a turn-keyed table (segments, scores, value tables, ...) hold rows of the given turns, and how
-- many: only these files are rewritten when a user's data is deleted.
-- Parameters: $files (list of the table's Parquet files of the current manifest); the turn ids are registered as
-- table `forget_ids` with one column turn_id.
-- Output columns: file, n (rows of the listed turns in that file).
SELECT filename AS file, count(*) AS n
FROM read_parquet($files, filename = true, union_by_name = true, hive_partitioning = false)
WHERE turn_id IN (SELECT turn_id FROM forget_ids)
GROUP BY filename
ORDER BY filename;
