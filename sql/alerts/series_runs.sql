-- The runs (run_id) that wrote the latest row of some metric key of the wanted series (see
-- sql/alerts/series_history.sql): ranking keys without their `details` JSON is cheap, and reading only these runs'
-- rows afterwards skips the superseded versions (each metrics run rewrites today's windows in full).
-- Parameters: $since (TIMESTAMP: the earliest `from_ws`), $metrics (VARCHAR[]: the metric names in
--   `alert_series_wanted`). Table `alert_series_wanted` (metric, granularity, model, deployment, from_ws) is
--   registered by the caller.
-- Output columns: run_id (NULL when such a row has none).
SELECT DISTINCT run_id
FROM (
    SELECT l.run_id, row_number() OVER (
        PARTITION BY l.metric, l.granularity, l.window_start, l.model, l.deployment, l.segment
        ORDER BY l.computed_at DESC, l.run_id DESC
    ) AS rn
    FROM metrics_log AS l
    JOIN alert_series_wanted AS w
      ON l.metric = w.metric AND l.granularity = w.granularity AND l.model IS NOT DISTINCT FROM w.model
     AND l.deployment IS NOT DISTINCT FROM w.deployment AND l.window_start >= w.from_ws
    WHERE l.window_start >= $since AND l.metric IN (SELECT unnest($metrics::VARCHAR[]))
)
WHERE rn = 1;
