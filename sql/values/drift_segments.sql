-- Segment values of the turns of an event-time range, for the per-segment drift breakdown.
-- Parameters:
--   $start, $end      TIMESTAMP: turns with start <= ts < end
--   $date_min, $date_max  VARCHAR 'YYYY-MM-DD': partition pruning bounds covering [start, end)
--   $attributes       VARCHAR[]: the segment attributes to break down by
-- Output columns: turn_id, attribute, value
SELECT DISTINCT s.turn_id, s.attribute, s.value
FROM segments AS s
JOIN turns AS t ON t.turn_id = s.turn_id AND t.date = s.date
WHERE list_contains($attributes, s.attribute) AND s.value IS NOT NULL
  AND t.date BETWEEN $date_min AND $date_max
  AND t.ts >= CAST($start AS TIMESTAMP) AND t.ts < CAST($end AS TIMESTAMP)
