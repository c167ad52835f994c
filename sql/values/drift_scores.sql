-- Value scores (long form) of the turns of an event-time range, for the value_drift job to pivot per dimension.
-- Parameters:
--   $start, $end      TIMESTAMP: turns with start <= ts < end
--   $date_min, $date_max  VARCHAR 'YYYY-MM-DD': partition pruning bounds covering [start, end)
--   $scorer_version   only scores of this scorer version
-- Output columns: turn_id, dimension, score
SELECT v.turn_id, v.dimension, v.score
FROM value_scores AS v
JOIN turns AS t ON t.turn_id = v.turn_id AND t.date = v.date
WHERE v.scorer_version = $scorer_version
  AND t.date BETWEEN $date_min AND $date_max
  AND t.ts >= CAST($start AS TIMESTAMP) AND t.ts < CAST($end AS TIMESTAMP)
