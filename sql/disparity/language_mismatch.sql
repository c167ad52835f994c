-- Disparity: per window, model and declared language, how many turns' user messages were detected as another
-- language. Declared codes are compared by their primary subtag ('en-US' -> 'en'); turns whose detected language
-- is 'unknown' (short or ambiguous text) are left out of n.
-- Parameters: $granularity ('day' | 'hour'), $windows (TIMESTAMP[]), $date_min, $date_max (VARCHAR dates),
-- $declared_attribute (VARCHAR, normally 'language').
-- Output columns: window_start, model, declared, n, mismatches.
WITH declared AS (
    SELECT DISTINCT turn_id, lower(split_part(replace(value, '_', '-'), '-', 1)) AS declared
    FROM segments
    WHERE date BETWEEN $date_min AND $date_max AND attribute = $declared_attribute AND value IS NOT NULL
),
detected AS (
    SELECT turn_id, any_value(value) AS detected
    FROM segments
    WHERE date BETWEEN $date_min AND $date_max AND attribute = 'detected_language' AND value <> 'unknown'
    GROUP BY turn_id
)
SELECT date_trunc($granularity, t.ts) AS window_start,
       coalesce(t.model, 'unknown') AS model,
       d.declared,
       count(*) AS n,
       count(*) FILTER (WHERE d.declared <> x.detected) AS mismatches
FROM turns t
JOIN declared d USING (turn_id)
JOIN detected x USING (turn_id)
WHERE t.date BETWEEN $date_min AND $date_max
  AND list_contains($windows, date_trunc($granularity, t.ts))
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3;
