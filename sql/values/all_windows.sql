-- Every event-time window holding turns processed by the values job with a scorer version.
-- A daily window is its turns' event date, which value_turns carries as its partition (the turn's UTC date), so
-- no turn is read: the cost is a scan of value_turns' scorer_version, not a join over every turn of the span (a
-- busy day holds hundreds of thousands). An hourly window needs the turn's timestamp. The granularity filters are
-- constant once the parameter is bound, so only one branch runs.
-- Parameters:
--   $granularity      'day' | 'hour'
--   $scorer_version   the scorer version
--   $date_min, $date_max  VARCHAR 'YYYY-MM-DD': only turns of these event dates (the span a run can affect)
-- Output columns: window_start
SELECT DISTINCT CAST(CAST(v.date AS DATE) AS TIMESTAMP) AS window_start
FROM value_turns AS v
WHERE $granularity = 'day'
  AND v.scorer_version = $scorer_version
  AND v.date BETWEEN $date_min AND $date_max
UNION
SELECT DISTINCT date_trunc($granularity, t.ts) AS window_start
FROM value_turns AS v
JOIN turns AS t ON t.turn_id = v.turn_id AND t.date = v.date
WHERE $granularity <> 'day'
  AND v.scorer_version = $scorer_version
  AND t.date BETWEEN $date_min AND $date_max
ORDER BY 1
