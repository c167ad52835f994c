-- Metric family `values`, metric value_coverage: per window and group, how many replies the values job processed
-- and how many the lexicons could score, with the count of each unscored reason. A drop in coverage (e.g. more
-- non-English traffic) is reported here so it is not mistaken for value drift.
-- Groups: all traffic, per model, per deployment; each of them also per segment value.
-- Parameters:
--   $granularity      'day' | 'hour'
--   $windows          TIMESTAMP[]: window starts to compute
--   $date_min, $date_max  VARCHAR 'YYYY-MM-DD': partition pruning bounds covering the windows
--   $attributes       VARCHAR[]: segment attributes to break down by
--   $scorer_version   only rows of this scorer version
-- Output columns: window_start, window_end, model, deployment, seg_attribute, seg_value, n (replies),
--   scored, empty, too_short, non_english
WITH base AS (
    SELECT v.turn_id, v.scored, v.reason,
           date_trunc($granularity, t.ts) AS window_start,
           coalesce(t.model, 'unknown') AS model,
           coalesce(t.deployment, 'unknown') AS deployment
    FROM value_turns AS v
    JOIN turns AS t ON t.turn_id = v.turn_id AND t.date = v.date
    WHERE t.date BETWEEN $date_min AND $date_max
      AND v.scorer_version = $scorer_version
      AND list_contains($windows, date_trunc($granularity, t.ts))
),
tagged AS (
    SELECT window_start, model, deployment, CAST(NULL AS VARCHAR) AS seg_attribute,
           CAST(NULL AS VARCHAR) AS seg_value, scored, reason
    FROM base
    UNION ALL
    SELECT b.window_start, b.model, b.deployment, s.attribute, s.value, b.scored, b.reason
    FROM base AS b
    JOIN (SELECT DISTINCT turn_id, attribute, value FROM segments WHERE date BETWEEN $date_min AND $date_max) AS s
      ON s.turn_id = b.turn_id
    WHERE list_contains($attributes, s.attribute) AND s.value IS NOT NULL
)
SELECT
    window_start,
    window_start + CASE WHEN $granularity = 'hour' THEN INTERVAL 1 HOUR ELSE INTERVAL 1 DAY END AS window_end,
    CASE WHEN GROUPING(model) = 1 THEN NULL ELSE model END AS model,
    CASE WHEN GROUPING(deployment) = 1 THEN NULL ELSE deployment END AS deployment,
    seg_attribute,
    seg_value,
    count(*) AS n,
    count(*) FILTER (WHERE scored) AS scored,
    count(*) FILTER (WHERE reason = 'empty') AS empty,
    count(*) FILTER (WHERE reason = 'too_short') AS too_short,
    count(*) FILTER (WHERE reason = 'non_english') AS non_english
FROM tagged
GROUP BY GROUPING SETS (
    (window_start, seg_attribute, seg_value),
    (window_start, model, seg_attribute, seg_value),
    (window_start, deployment, seg_attribute, seg_value)
)
ORDER BY window_start, model NULLS FIRST, deployment NULLS FIRST, seg_attribute NULLS FIRST, seg_value
