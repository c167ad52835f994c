-- Disparity / value dimensions: like value_group_stats.sql but for the intersection of two attributes (e.g.
-- language x age_band): per window, model, source kind, pair of values and dimension, for turns that carry both
-- attributes, the histogram of scores in bins of 0.01 with exact n, sum and sum of squares per bin. Current value
-- scores only (latest value_turns row per turn, if scored); no `refusal` dimension.
-- Parameters: $granularity ('day' | 'hour'), $windows (TIMESTAMP[]), $date_min, $date_max (VARCHAR dates),
-- $attr_a, $attr_b (VARCHAR attribute names).
-- Output columns: window_start, model, source_kind, value_a, value_b, dimension, bin, family, n, total,
-- total_sq, nonzero (replies scoring above 0).
WITH cur AS (
    SELECT turn_id, scorer_version FROM (
        SELECT turn_id, scorer_version, scored,
               row_number() OVER (PARTITION BY turn_id ORDER BY scored_at DESC, scorer_version DESC) AS rn
        FROM value_turns
        WHERE date BETWEEN $date_min AND $date_max
    ) WHERE rn = 1 AND scored
),
base AS (
    SELECT t.turn_id,
           date_trunc($granularity, t.ts) AS window_start,
           t.model,
           t.source_kind,
           v.dimension, v.family, v.score
    FROM turn_sources t
    JOIN cur c USING (turn_id)
    JOIN value_scores v ON v.turn_id = c.turn_id AND v.scorer_version = c.scorer_version
    WHERE t.date BETWEEN $date_min AND $date_max
      AND v.date BETWEEN $date_min AND $date_max
      AND list_contains($windows, date_trunc($granularity, t.ts))
      AND v.dimension <> 'refusal'
),
a AS (
    SELECT DISTINCT turn_id, value FROM segments
    WHERE date BETWEEN $date_min AND $date_max AND attribute = $attr_a AND value IS NOT NULL
),
b2 AS (
    SELECT DISTINCT turn_id, value FROM segments
    WHERE date BETWEEN $date_min AND $date_max AND attribute = $attr_b AND value IS NOT NULL
)
SELECT b.window_start, b.model, b.source_kind, a.value AS value_a, b2.value AS value_b, b.dimension,
       round(b.score, 2) AS bin,
       any_value(b.family) AS family,
       count(*) AS n,
       sum(b.score) AS total,
       sum(b.score * b.score) AS total_sq,
       count(*) FILTER (WHERE b.score > 0) AS nonzero
FROM base b
JOIN a USING (turn_id)
JOIN b2 USING (turn_id)
GROUP BY b.window_start, b.model, b.source_kind, a.value, b2.value, b.dimension, round(b.score, 2)
ORDER BY b.window_start, b.model, b.source_kind, a.value, b2.value, b.dimension, bin;
