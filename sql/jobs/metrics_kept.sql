-- metrics_log upkeep: the rows of some metrics_log files worth keeping. Every job run appends a full set of rows
-- for each window it recomputes, so without pruning the log grows with the number of runs, not with the data. A
-- row is kept while it is the newest computation of its key (what view `metrics` shows) or was superseded less
-- than the history period ago (recent revisions stay inspectable). A *draft* goes sooner: a computation of a window
-- still in progress, superseded by another before the window ended (each run of the chain rewrites today's windows
-- with the day so far, 288 times a day at the default interval). Its successor holds the same turns and more; the
-- last computation made before the window closed is no draft and stays the history period.
-- Parameters:
--   $files    VARCHAR[]: the Parquet files of one metrics_log partition
--   $cutoff   TIMESTAMP: rows superseded by a computation older than this are dropped
--   $draft_cutoff TIMESTAMP: drafts superseded by a computation older than this are dropped
-- Output columns: every column of metrics_log (`family` read from the hive folder name; the caller drops it when
-- writing the file back into that folder).
SELECT * EXCLUDE (newer_at)
FROM (
    SELECT *,
           lag(computed_at) OVER (
               PARTITION BY metric, granularity, window_start, model, deployment, segment
               ORDER BY computed_at DESC, run_id DESC
           ) AS newer_at
    FROM read_parquet($files)
)
WHERE newer_at IS NULL
   OR (newer_at >= CAST($cutoff AS TIMESTAMP)
       AND (newer_at >= window_end OR newer_at >= CAST($draft_cutoff AS TIMESTAMP)))
