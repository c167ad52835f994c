-- Keys of the value metrics already published for some windows, so a recomputation can retire a key that no
-- longer has data (n = 0 row), e.g. after a config change removed a plugin dimension or a segment attribute.
-- Parameters:
--   $granularity  'day' | 'hour'
--   $windows      TIMESTAMP[]: the window starts being recomputed
--   $metrics      VARCHAR[]: metric names owned by the calling job
-- Output columns: metric, window_start, window_end, model, deployment, segment
SELECT metric, window_start, window_end, model, deployment, segment
FROM metrics
WHERE family = 'values'
  AND granularity = $granularity
  AND list_contains($windows, window_start)
  AND list_contains($metrics, metric)
  AND n > 0
