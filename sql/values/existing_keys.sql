-- Keys of the value metrics already published for some windows, so a recomputation can retire a key that no
-- longer has data (n = 0 row), e.g. after a config change removed a plugin dimension or a segment attribute.
-- The latest row per key as in view `metrics`, but ranked among the rows of these windows and metrics only:
-- window, metric and granularity are part of the key, so filtering them first keeps the same latest rows while
-- the ranking no longer grows with the whole metrics_log (metric names belong to one family, so the family
-- filter also lets DuckDB skip the other families' files).
-- Parameters:
--   $granularity  'day' | 'hour'
--   $windows      TIMESTAMP[]: the window starts being recomputed
--   $metrics      VARCHAR[]: metric names owned by the calling job
-- Output columns: metric, window_start, window_end, model, deployment, segment
SELECT metric, window_start, window_end, model, deployment, segment
FROM (
    SELECT metric, window_start, window_end, model, deployment, segment, n,
           row_number() OVER (
               PARTITION BY metric, granularity, window_start, model, deployment, segment
               ORDER BY computed_at DESC, run_id DESC
           ) AS rn
    FROM metrics_log
    WHERE family = 'values'
      AND granularity = $granularity
      AND list_contains($windows, window_start)
      AND list_contains($metrics, metric)
) AS latest
WHERE rn = 1
  AND n > 0
