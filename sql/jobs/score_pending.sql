-- Turns committed since the score job's last run (view new_turns: see monitor/incremental.py) that are not yet
-- scored by the current classifier versions. A new version makes every turn new again (the watermark is kept per
-- classifier identity), and view latest_scores then prefers the newest rows.
-- Parameters:
--   $refusal_version, $harm_version, $backend   the loaded classifiers' identity
--   $date_min, $date_max   first and last event date among new_turns: scores are read only in those partitions
-- Output columns: turn_id, user_message, assistant_message, date
SELECT t.turn_id, t.user_message, t.assistant_message, t.date
FROM new_turns AS t
WHERE NOT EXISTS (
    SELECT 1 FROM scores AS s
    WHERE s.turn_id = t.turn_id
      AND s.date BETWEEN $date_min AND $date_max
      AND s.refusal_version = $refusal_version
      AND s.harm_version = $harm_version
      AND s.backend = $backend
)
ORDER BY t.date, t.turn_id
