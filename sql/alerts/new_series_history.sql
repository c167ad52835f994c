-- The latest row of every metric key among the metric rows committed since the alert engine's last evaluation
-- (view `new_metrics_log`), one series after another, oldest window first (as sql/alerts/metric_history.sql).
-- When sql/alerts/new_rows_newest.sql holds, these are the latest rows of the whole log for their keys, so a
-- series whose changed windows all have a new row is evaluated from them without reading older files.
-- Parameters: $since (TIMESTAMP: only windows starting at or after it), $metrics (VARCHAR[]: metric names to read).
-- Output columns: as sql/alerts/metric_history.sql.
SELECT metric, granularity, window_start, window_end, model, deployment, segment, value, ci_low, ci_high, n,
       numerator, corrected, corrected_ci_low, corrected_ci_high, small_sample, details
FROM (
    SELECT *, row_number() OVER (
        PARTITION BY metric, granularity, window_start, model, deployment, segment
        ORDER BY computed_at DESC, run_id DESC
    ) AS rn
    FROM new_metrics_log
    WHERE window_start >= $since AND metric IN (SELECT unnest($metrics::VARCHAR[]))
)
WHERE rn = 1
ORDER BY metric, granularity, model NULLS FIRST, deployment NULLS FIRST, segment, window_start;
