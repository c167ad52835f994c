-- Rows of a turn-keyed table (scores, segments, value tables, ...) whose turn is no longer in `turns`: left when a
-- job that read the turns before a deletion committed its rows after it (e.g. `score` racing `monitor forget`).
-- Parameters: $files (the table's Parquet files of the current manifest), $turn_files (the turns files of the
-- same manifest; never empty: the caller skips the sweep when there are no turns at all).
-- Output columns: file, turn_id, n (orphan rows of that turn in that file).
SELECT filename AS file, turn_id, count(*) AS n
FROM read_parquet($files, filename = true, union_by_name = true, hive_partitioning = false)
WHERE turn_id NOT IN (
    SELECT turn_id FROM read_parquet($turn_files, union_by_name = true, hive_partitioning = false)
    WHERE turn_id IS NOT NULL
)
GROUP BY filename, turn_id;
