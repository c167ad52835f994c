-- Disparity: like group_counts.sql but for the intersection of two attributes (e.g. language x age_band): one
-- row per window, model, source kind and pair of values, for turns that carry both attributes.
-- Parameters: $granularity ('day' | 'hour'), $windows (TIMESTAMP[]), $date_min, $date_max (VARCHAR dates),
-- $attr_a, $attr_b (VARCHAR attribute names).
-- Output columns: window_start, model, source_kind, value_a, value_b, n, refusals, n_benign, over_refusals,
-- n_harmful, under_refusals.
WITH base AS (
    SELECT t.turn_id,
           date_trunc($granularity, t.ts) AS window_start,
           t.model,
           t.source_kind,
           s.refusal IN ('full_refusal', 'partial_refusal') AS refused,
           s.prompt_harm
    FROM turn_sources t
    JOIN latest_scores s USING (turn_id)
    WHERE t.date BETWEEN $date_min AND $date_max
      AND list_contains($windows, date_trunc($granularity, t.ts))
      AND s.refusal IS NOT NULL
),
a AS (
    SELECT DISTINCT turn_id, value FROM segments
    WHERE date BETWEEN $date_min AND $date_max AND attribute = $attr_a AND value IS NOT NULL
),
b2 AS (
    SELECT DISTINCT turn_id, value FROM segments
    WHERE date BETWEEN $date_min AND $date_max AND attribute = $attr_b AND value IS NOT NULL
)
SELECT b.window_start, b.model, b.source_kind, a.value AS value_a, b2.value AS value_b,
       count(*) AS n,
       count(*) FILTER (WHERE b.refused) AS refusals,
       count(*) FILTER (WHERE b.prompt_harm = 'benign') AS n_benign,
       count(*) FILTER (WHERE b.prompt_harm = 'benign' AND b.refused) AS over_refusals,
       count(*) FILTER (WHERE b.prompt_harm = 'harmful') AS n_harmful,
       count(*) FILTER (WHERE b.prompt_harm = 'harmful' AND NOT b.refused) AS under_refusals
FROM base b
JOIN a USING (turn_id)
JOIN b2 USING (turn_id)
GROUP BY b.window_start, b.model, b.source_kind, a.value, b2.value
ORDER BY b.window_start, b.model, b.source_kind, a.value, b2.value;
