-- Disparity / value dimensions: the event-time windows holding turns whose value scores (value_turns rows) were
-- written after a watermark, so their value and rate disparities are recomputed together (one BH family).
-- Parameters: $granularity ('day' | 'hour'), $since (TIMESTAMP; NULL = every window with value scores).
-- Output columns: window_start (TIMESTAMP).
SELECT DISTINCT date_trunc($granularity, t.ts) AS window_start
FROM value_turns v
JOIN turns t USING (turn_id)
WHERE CAST($since AS TIMESTAMP) IS NULL OR v.scored_at > CAST($since AS TIMESTAMP)
ORDER BY window_start;
