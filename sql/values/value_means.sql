-- Metric family `values`, metric value_mean: per window, dimension and group, the sums behind the mean value score
-- of scored replies (unscored replies have no value_scores rows, so they are not in n). The job turns the sums
-- into a mean, a standard deviation and a t interval.
-- Groups: all traffic, per model, per deployment; each of them also per segment value.
-- Parameters:
--   $granularity      'day' | 'hour'
--   $windows          TIMESTAMP[]: window starts to compute
--   $date_min, $date_max  VARCHAR 'YYYY-MM-DD': partition pruning bounds covering the windows
--   $attributes       VARCHAR[]: segment attributes to break down by ([] = no segment rows)
--   $scorer_version   only scores of this scorer version
-- Output columns:
--   window_start, window_end, model, deployment (NULL = all), seg_attribute, seg_value (NULL = all traffic),
--   dimension, family, n (scored replies with a score on this dimension), total (sum of scores),
--   total_sq (sum of squared scores), nonzero (replies with score > 0)
WITH base AS (
    SELECT v.turn_id, v.dimension, v.family, v.score,
           date_trunc($granularity, t.ts) AS window_start,
           coalesce(t.model, 'unknown') AS model,
           coalesce(t.deployment, 'unknown') AS deployment
    FROM value_scores AS v
    JOIN turns AS t ON t.turn_id = v.turn_id AND t.date = v.date
    WHERE t.date BETWEEN $date_min AND $date_max
      AND v.scorer_version = $scorer_version
      AND list_contains($windows, date_trunc($granularity, t.ts))
),
tagged AS (
    SELECT window_start, model, deployment, CAST(NULL AS VARCHAR) AS seg_attribute,
           CAST(NULL AS VARCHAR) AS seg_value, dimension, family, score
    FROM base
    UNION ALL
    SELECT b.window_start, b.model, b.deployment, s.attribute, s.value, b.dimension, b.family, b.score
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
    dimension,
    any_value(family) AS family,
    count(*) AS n,
    sum(score) AS total,
    sum(score * score) AS total_sq,
    count(*) FILTER (WHERE score > 0) AS nonzero
FROM tagged
GROUP BY GROUPING SETS (
    (window_start, seg_attribute, seg_value, dimension),
    (window_start, model, seg_attribute, seg_value, dimension),
    (window_start, deployment, seg_attribute, seg_value, dimension)
)
ORDER BY window_start, model NULLS FIRST, deployment NULLS FIRST, seg_attribute NULLS FIRST, seg_value, dimension
