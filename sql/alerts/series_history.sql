-- Metric history of some series only, for incremental alert evaluation: the latest row of every metric key (as
-- view `metrics` picks it) of the (metric, granularity, model, deployment) groups listed in table
-- `alert_series_wanted`, from that group's `from_ws` on, one series after another, oldest window first (as
-- sql/alerts/metric_history.sql). The windows are filtered before the latest row is picked (every filtered column
-- is part of the metric key), so only the wanted windows of `metrics_log` are ranked, not the whole log; and
-- only the rows of the runs that wrote some latest row (sql/alerts/series_runs.sql) are read: the latest row of
-- every key is among them, and it is the latest among them too.
-- Parameters: $since (TIMESTAMP: the earliest `from_ws`), $metrics (VARCHAR[]: the metric names in
--   `alert_series_wanted`), $runs (VARCHAR[]: those runs), $null_run (BOOLEAN: rows without a run_id too).
--   Table `alert_series_wanted` (metric, granularity, model, deployment, from_ws) is registered by the caller.
-- Output columns: as sql/alerts/metric_history.sql.
SELECT metric, granularity, window_start, window_end, model, deployment, segment, value, ci_low, ci_high, n,
       numerator, corrected, corrected_ci_low, corrected_ci_high, small_sample, details
FROM (
    SELECT l.*, row_number() OVER (
        PARTITION BY l.metric, l.granularity, l.window_start, l.model, l.deployment, l.segment
        ORDER BY l.computed_at DESC, l.run_id DESC
    ) AS rn
    FROM metrics_log AS l
    JOIN alert_series_wanted AS w
      ON l.metric = w.metric AND l.granularity = w.granularity AND l.model IS NOT DISTINCT FROM w.model
     AND l.deployment IS NOT DISTINCT FROM w.deployment AND l.window_start >= w.from_ws
    WHERE l.window_start >= $since AND l.metric IN (SELECT unnest($metrics::VARCHAR[]))
      AND (l.run_id IN (SELECT unnest($runs::VARCHAR[])) OR ($null_run AND l.run_id IS NULL))
)
WHERE rn = 1
ORDER BY metric, granularity, model NULLS FIRST, deployment NULLS FIRST, segment, window_start;
