-- Metric rows for dashboard charts: the latest computed row (view `metrics`) of the named metrics, or of every
-- metric whose name matches a LIKE pattern (e.g. '%_disparity'), for windows starting in [$start, $end).
-- Parameters: $metrics (list of metric names; may be empty), $pattern (LIKE pattern; '' = none),
--   $start, $end (timestamps, naive UTC), $granularity ('day' | 'hour').
-- Columns: metric, granularity, window_start, window_end, model, deployment, segment, value, ci_low, ci_high, n,
--   numerator, corrected, corrected_ci_low, corrected_ci_high, small_sample, details.
SELECT metric, granularity, window_start, window_end, model, deployment, segment, value, ci_low, ci_high, n,
       numerator, corrected, corrected_ci_low, corrected_ci_high, small_sample, details
FROM metrics
WHERE (list_contains($metrics, metric) OR ($pattern <> '' AND metric LIKE $pattern))
  AND window_start >= $start AND window_start < $end
  AND granularity = $granularity
ORDER BY metric, window_start, model NULLS FIRST, segment;
