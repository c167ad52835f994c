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
-- How: a window of 50k turns has ~1M scores and ~4M (score, segment) pairs, so the pairs are summed on small integer
-- codes (turn tn, window/model/deployment md, segment value sv) and the dimension before the names are joined
-- back and the grouping sets run over a few thousand partial sums: 3x less CPU than grouping the named pairs.
WITH tk AS (  -- the turns of the windows, numbered
    SELECT turn_id, date, date_trunc($granularity, ts) AS window_start,
           coalesce(model, 'unknown') AS model, coalesce(deployment, 'unknown') AS deployment,
           row_number() OVER (ORDER BY turn_id, date) AS tn,
           dense_rank() OVER (ORDER BY date_trunc($granularity, ts), coalesce(model, 'unknown'),
                                       coalesce(deployment, 'unknown')) AS md
    FROM turns
    WHERE date BETWEEN $date_min AND $date_max
      AND list_contains($windows, date_trunc($granularity, ts))
),
mdk AS (  -- code of each (window, model, deployment)
    SELECT DISTINCT md, window_start, model, deployment FROM tk
),
scores AS (
    SELECT t.tn, t.md, v.dimension, v.family, v.score
    FROM value_scores AS v
    JOIN tk AS t ON t.turn_id = v.turn_id AND t.date = v.date
    WHERE v.scorer_version = $scorer_version
),
dims AS (  -- the family of each dimension
    SELECT dimension, any_value(family) AS family FROM scores GROUP BY dimension
),
seg AS (
    SELECT DISTINCT t.tn, s.attribute, s.value
    FROM segments AS s JOIN tk AS t ON t.turn_id = s.turn_id
    WHERE s.date BETWEEN $date_min AND $date_max AND list_contains($attributes, s.attribute) AND s.value IS NOT NULL
),
svk AS (  -- code of each (attribute, value)
    SELECT attribute, value, row_number() OVER (ORDER BY attribute, value) AS sv
    FROM (SELECT DISTINCT attribute, value FROM seg)
),
segk AS (
    SELECT s.tn, k.sv FROM seg AS s JOIN svk AS k ON k.attribute = s.attribute AND k.value = s.value
),
cells AS (  -- partial sums per window/model/deployment, segment value (NULL = all traffic), dimension
    SELECT md, CAST(NULL AS BIGINT) AS sv, dimension, count(*) AS n, sum(score) AS total,
           sum(score * score) AS total_sq, count(*) FILTER (WHERE score > 0) AS nonzero
    FROM scores GROUP BY md, dimension
    UNION ALL
    SELECT b.md, s.sv, b.dimension, count(*), sum(b.score), sum(b.score * b.score), count(*) FILTER (WHERE b.score > 0)
    FROM scores AS b JOIN segk AS s ON s.tn = b.tn
    GROUP BY b.md, s.sv, b.dimension
),
named AS (
    SELECT m.window_start, m.model, m.deployment, k.attribute AS seg_attribute, k.value AS seg_value, c.dimension,
           d.family, c.n, c.total, c.total_sq, c.nonzero
    FROM cells AS c JOIN mdk AS m USING (md) JOIN dims AS d USING (dimension) LEFT JOIN svk AS k USING (sv)
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
    CAST(sum(n) AS BIGINT) AS n,
    sum(total) AS total,
    sum(total_sq) AS total_sq,
    CAST(sum(nonzero) AS BIGINT) AS nonzero
FROM named
GROUP BY GROUPING SETS (
    (window_start, seg_attribute, seg_value, dimension),
    (window_start, model, seg_attribute, seg_value, dimension),
    (window_start, deployment, seg_attribute, seg_value, dimension)
)
ORDER BY window_start, model NULLS FIRST, deployment NULLS FIRST, seg_attribute NULLS FIRST, seg_value, dimension
