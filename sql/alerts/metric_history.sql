-- Metric history for alert evaluation: the latest row of every metric key (view `metrics`) of the metrics some
-- rule watches, one series after another, oldest window first, so each rule can walk a series and compare a
-- window with the ones before it.
-- Parameters: $since (TIMESTAMP: only windows starting at or after it), $metrics (VARCHAR[]: metric names to read).
-- Output columns: metric, granularity, window_start, window_end, model, deployment, segment (JSON text), value,
--   ci_low, ci_high, n, numerator, corrected, corrected_ci_low, corrected_ci_high, small_sample, details (JSON).
SELECT metric, granularity, window_start, window_end, model, deployment, segment, value, ci_low, ci_high, n,
       numerator, corrected, corrected_ci_low, corrected_ci_high, small_sample, details
FROM metrics
WHERE window_start >= $since AND metric IN (SELECT unnest($metrics::VARCHAR[]))
ORDER BY metric, granularity, model NULLS FIRST, deployment NULLS FIRST, segment, window_start;
