-- Disparity / value dimensions: per window, model, source kind, attribute, group and value dimension, the
-- histogram of the group's value scores in bins of 0.01 (bin = round(score, 2)), with the exact n, sum and sum of
-- squares of each bin. Summed over bins they give the mean, standard deviation and t interval; the bins give the
-- Mann-Whitney test against the reference (a rank test needs the order of the scores, not every raw value).
-- Each turn counts with its current value scores: those of its latest value_turns row (latest scored_at), and
-- only if that row is scored (unscored replies have no value_scores rows and never pull a mean down). The
-- `refusal` dimension (the classifier's probability) is left out: refusal_disparity already tests it.
-- model = the full model identifier (name@version).
-- Parameters: $granularity ('day' | 'hour'), $windows (TIMESTAMP[] window starts), $date_min, $date_max
-- (VARCHAR 'YYYY-MM-DD' partition pruning bounds covering the windows), $attributes (VARCHAR[]).
-- Output columns: window_start, model, source_kind, attribute, value, dimension, bin, family, n, total,
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
seg AS (
    SELECT DISTINCT turn_id, attribute, value
    FROM segments
    WHERE date BETWEEN $date_min AND $date_max
      AND list_contains($attributes, attribute)
      AND value IS NOT NULL
)
SELECT b.window_start, b.model, b.source_kind, g.attribute, g.value, b.dimension, round(b.score, 2) AS bin,
       any_value(b.family) AS family,
       count(*) AS n,
       sum(b.score) AS total,
       sum(b.score * b.score) AS total_sq,
       count(*) FILTER (WHERE b.score > 0) AS nonzero
FROM base b
JOIN seg g USING (turn_id)
GROUP BY b.window_start, b.model, b.source_kind, g.attribute, g.value, b.dimension, round(b.score, 2)
ORDER BY b.window_start, b.model, b.source_kind, g.attribute, g.value, b.dimension, bin;
