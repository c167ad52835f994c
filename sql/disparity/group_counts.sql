-- Disparity: per window, model, source kind, attribute and group, the counts behind the refusal, over-refusal
-- and under-refusal rates of scored turns (a turn counts once per attribute it carries).
-- refused = full_refusal or partial_refusal; over-refusal = refused among benign prompts; under-refusal =
-- complied among harmful prompts. model = the full model identifier (name@version). source_kind = 'probe' for counterfactual
-- probe turns, else 'production' (both as defined by the view turn_sources).
-- Parameters: $granularity ('day' | 'hour'), $windows (TIMESTAMP[] window starts), $date_min, $date_max
-- (VARCHAR 'YYYY-MM-DD': partition pruning bounds covering the windows), $attributes (VARCHAR[]).
-- Output columns: window_start, model, source_kind, attribute, value, n, refusals, n_benign, over_refusals,
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
      AND s.date BETWEEN $date_min AND $date_max  -- a score has its turn's date: only read these partitions
      AND list_contains($windows, date_trunc($granularity, t.ts))
      AND s.refusal IS NOT NULL
),
seg AS (
    SELECT DISTINCT turn_id, attribute, value
    FROM segments
    WHERE date BETWEEN $date_min AND $date_max
      AND list_contains($attributes, attribute)
      AND value IS NOT NULL
)
SELECT b.window_start, b.model, b.source_kind, g.attribute, g.value,
       count(*) AS n,
       count(*) FILTER (WHERE b.refused) AS refusals,
       count(*) FILTER (WHERE b.prompt_harm = 'benign') AS n_benign,
       count(*) FILTER (WHERE b.prompt_harm = 'benign' AND b.refused) AS over_refusals,
       count(*) FILTER (WHERE b.prompt_harm = 'harmful') AS n_harmful,
       count(*) FILTER (WHERE b.prompt_harm = 'harmful' AND NOT b.refused) AS under_refusals
FROM base b
JOIN seg g USING (turn_id)
GROUP BY b.window_start, b.model, b.source_kind, g.attribute, g.value
ORDER BY b.window_start, b.model, b.source_kind, g.attribute, g.value;
