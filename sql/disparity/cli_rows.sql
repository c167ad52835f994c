-- Disparity CLI (`monitor disparity`): the latest disparity rows (view `metrics`, family 'disparity', metric
-- names ending in 'disparity': rates, value dimensions, probes) of one day's windows, or of the latest window.
-- Parameters:
--   $day        DATE or NULL: windows starting on this day (NULL = the latest window holding matching rows)
--   $model      VARCHAR or NULL: rows of this model identifier (name@version); NULL = the all-models rows
--   $attribute  VARCHAR or NULL: rows of this attribute (e.g. 'language' or 'language&age_band'); NULL = all
-- Output columns: metric, granularity, window_start, window_end, model, segment, value, ci_low, ci_high, n,
--   numerator, small_sample, details
WITH d AS (
    SELECT metric, granularity, window_start, window_end, model, segment, value, ci_low, ci_high, n, numerator,
           small_sample, details
    FROM metrics
    WHERE family = 'disparity' AND metric LIKE '%disparity'
      AND ((CAST($model AS VARCHAR) IS NULL AND model IS NULL) OR model = CAST($model AS VARCHAR))
      AND (CAST($attribute AS VARCHAR) IS NULL
           OR json_extract_string(details, '$.attribute') = CAST($attribute AS VARCHAR))
)
SELECT *
FROM d
WHERE (CAST($day AS DATE) IS NULL AND window_start = (SELECT max(window_start) FROM d))
   OR CAST(window_start AS DATE) = CAST($day AS DATE)
ORDER BY window_start, metric, json_extract_string(details, '$.attribute'), segment;
