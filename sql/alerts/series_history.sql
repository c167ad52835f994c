-- Metric history of some series only, for incremental alert evaluation: the latest row of every metric key (view
-- `metrics`) of the (metric, granularity, model, deployment) groups listed in table `alert_series_wanted`, from
-- that group's `from_ws` on, one series after another, oldest window first (as sql/alerts/metric_history.sql).
-- Parameters: $since (TIMESTAMP: the earliest `from_ws`, so the scan skips older windows), $metrics (VARCHAR[]:
--   the metric names in `alert_series_wanted`). Table `alert_series_wanted` (metric, granularity, model,
--   deployment, from_ws) is registered by the caller.
-- Output columns: as sql/alerts/metric_history.sql.
SELECT m.metric, m.granularity, m.window_start, m.window_end, m.model, m.deployment, m.segment, m.value, m.ci_low,
       m.ci_high, m.n, m.numerator, m.corrected, m.corrected_ci_low, m.corrected_ci_high, m.small_sample, m.details
FROM metrics AS m
JOIN alert_series_wanted AS w
  ON m.metric = w.metric AND m.granularity = w.granularity AND m.model IS NOT DISTINCT FROM w.model
 AND m.deployment IS NOT DISTINCT FROM w.deployment AND m.window_start >= w.from_ws
WHERE m.window_start >= $since AND m.metric IN (SELECT unnest($metrics::VARCHAR[]))
ORDER BY m.metric, m.granularity, m.model NULLS FIRST, m.deployment NULLS FIRST, m.segment, m.window_start;
