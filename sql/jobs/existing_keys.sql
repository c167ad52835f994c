-- Keys of a family's metrics already published for some windows, so a recomputation can retire a key that no
-- longer has data (an n = 0 row): e.g. after a re-score moved every turn of a segment out of a denominator, or a
-- config change removed a value dimension or a segment attribute.
-- The latest row per key as in view `metrics` (newest computed_at, then run_id), but among the rows of these
-- windows and metrics only: window, metric and granularity are part of the key, so filtering them first keeps the
-- same latest rows while the work no longer grows with the whole metrics_log (the family filter lets DuckDB skip
-- the other families' files). An aggregate per key instead of ranking every row: a window recomputed by every
-- run holds one row per key and run (~3x faster at 290k such rows).
-- Parameters:
--   $family       metrics_log family of the calling job ('refusal', 'values', ...)
--   $granularity  'day' | 'hour'
--   $windows      TIMESTAMP[]: the window starts being recomputed
--   $all_metrics  BOOLEAN: every metric of the family (true) or only those in $metrics (false)
--   $metrics      VARCHAR[]: metric names owned by the calling job (ignored when $all_metrics)
-- Output columns: metric, window_start, window_end, model, deployment, segment
SELECT metric, window_start, window_end, model, deployment, segment
FROM (
    SELECT metric, window_start, model, deployment, segment,
           arg_max(window_end, struct_pack(computed_at, run_id)) AS window_end,
           arg_max(n, struct_pack(computed_at, run_id)) AS n
    FROM metrics_log
    WHERE family = $family
      AND granularity = $granularity
      AND list_contains($windows, window_start)
      AND ($all_metrics OR list_contains($metrics, metric))
    GROUP BY metric, window_start, model, deployment, segment
) AS latest
WHERE n > 0
