-- Keys of the refusal metrics already published for some windows, so a recomputation can retire a key that
-- no longer has data (for example after a re-score moved every turn of a segment out of a denominator).
-- Parameters:
--   $granularity  'day' | 'hour'
--   $windows      TIMESTAMP[]: the window starts being recomputed
-- Output columns: metric, window_start, window_end, model, deployment, segment
SELECT metric, window_start, window_end, model, deployment, segment
FROM metrics
WHERE family = 'refusal'
  AND granularity = $granularity
  AND list_contains($windows, window_start)
  AND n > 0
