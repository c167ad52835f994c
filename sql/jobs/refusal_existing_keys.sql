-- Keys of the refusal metrics already published for some windows, so a recomputation can retire a key that
-- no longer has data (for example after a re-score moved every turn of a segment out of a denominator).
-- The latest row per key as in view `metrics` (newest computed_at, then run_id), among the rows of these windows
-- only, as an aggregate per key: ranking every row of a window that each run recomputes costs ~3x more.
-- Parameters:
--   $granularity  'day' | 'hour'
--   $windows      TIMESTAMP[]: the window starts being recomputed
-- Output columns: metric, window_start, window_end, model, deployment, segment
SELECT metric, window_start, window_end, model, deployment, segment
FROM (
    SELECT metric, window_start, model, deployment, segment,
           arg_max(window_end, struct_pack(computed_at, run_id)) AS window_end,
           arg_max(n, struct_pack(computed_at, run_id)) AS n
    FROM metrics_log
    WHERE family = 'refusal'
      AND granularity = $granularity
      AND list_contains($windows, window_start)
    GROUP BY metric, window_start, model, deployment, segment
) AS latest
WHERE n > 0
