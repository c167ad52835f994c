-- Event-time windows touched by classifier scores written after a watermark: the windows the refusal_metrics
-- job must recompute. A late-ingested turn (backfill) is scored late, so its old window shows up here.
-- Parameters:
--   $granularity  'day' | 'hour'
--   $since        TIMESTAMP or NULL: scores with scored_at after this (NULL = every window)
-- Output columns: window_start, max_scored_at (newest scored_at among that window's new scores)
SELECT date_trunc($granularity, t.ts) AS window_start, max(s.scored_at) AS max_scored_at
FROM scores AS s
JOIN turns AS t ON t.turn_id = s.turn_id
WHERE CAST($since AS TIMESTAMP) IS NULL OR s.scored_at > CAST($since AS TIMESTAMP)
GROUP BY 1
ORDER BY 1
