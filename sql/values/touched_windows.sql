-- Event-time windows that contain turns processed by the values job after a watermark: the windows whose value
-- metrics must be recomputed (a late turn is processed late, so its old window shows up here).
-- Parameters:
--   $granularity      'day' | 'hour'
--   $scorer_version   only rows of this scorer version
--   $since            TIMESTAMP or NULL: value_turns rows with scored_at after this (NULL = every window)
-- Output columns: window_start, max_scored_at
SELECT date_trunc($granularity, t.ts) AS window_start, max(v.scored_at) AS max_scored_at
FROM value_turns AS v
JOIN turns AS t ON t.turn_id = v.turn_id
WHERE v.scorer_version = $scorer_version
  AND (CAST($since AS TIMESTAMP) IS NULL OR v.scored_at > CAST($since AS TIMESTAMP))
GROUP BY 1
ORDER BY 1
