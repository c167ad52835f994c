-- Disparity: the event-time windows touched by classifier scores written after a watermark.
-- Parameters: $granularity ('day' | 'hour'), $since (TIMESTAMP; NULL = every scored window).
-- Output columns: window_start (TIMESTAMP).
SELECT DISTINCT date_trunc($granularity, t.ts) AS window_start
FROM scores s
JOIN turns t USING (turn_id)
WHERE $since IS NULL OR s.scored_at > $since
ORDER BY window_start;
