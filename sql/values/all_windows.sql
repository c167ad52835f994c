-- Every event-time window holding turns processed by the values job with a scorer version.
-- Parameters:
--   $granularity      'day' | 'hour'
--   $scorer_version   the scorer version
--   $date_min, $date_max  VARCHAR 'YYYY-MM-DD': only turns of these event dates (the span a run can affect)
-- Output columns: window_start
SELECT DISTINCT date_trunc($granularity, t.ts) AS window_start
FROM value_turns AS v
JOIN turns AS t ON t.turn_id = v.turn_id AND t.date = v.date
WHERE v.scorer_version = $scorer_version
  AND t.date BETWEEN $date_min AND $date_max
ORDER BY 1
