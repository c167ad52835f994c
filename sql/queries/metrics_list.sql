-- Computed metric rows for `monitor metrics`: the latest computation of every key (view `metrics`), filtered.
-- Parameters:
--   $metric  VARCHAR or NULL: one metric name (NULL = every metric)
--   $since   TIMESTAMP or NULL: only windows starting at or after this
--   $model   VARCHAR or NULL: only rows of this model (NULL = every row, including all-models rows)
-- Output columns: metric, family, granularity, window_start, window_end, model, deployment, segment, value,
--   ci_low, ci_high, n, numerator, small_sample, corrected, corrected_ci_low, corrected_ci_high, details,
--   computed_at
SELECT metric, family, granularity, window_start, window_end, model, deployment, segment, value, ci_low, ci_high,
       n, numerator, small_sample, corrected, corrected_ci_low, corrected_ci_high, details, computed_at
FROM metrics
WHERE (CAST($metric AS VARCHAR) IS NULL OR metric = CAST($metric AS VARCHAR))
  AND (CAST($since AS TIMESTAMP) IS NULL OR window_start >= CAST($since AS TIMESTAMP))
  AND (CAST($model AS VARCHAR) IS NULL OR model = CAST($model AS VARCHAR))
ORDER BY metric, granularity, window_start, model NULLS FIRST, deployment NULLS FIRST, segment
