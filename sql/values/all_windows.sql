-- Every event-time window holding turns processed by the values job with a scorer version.
-- Parameters:
--   $granularity      'day' | 'hour'
--   $scorer_version   the scorer version
-- Output columns: window_start
SELECT DISTINCT date_trunc($granularity, t.ts) AS window_start
FROM value_turns AS v
JOIN turns AS t ON t.turn_id = v.turn_id
WHERE v.scorer_version = $scorer_version
ORDER BY 1
