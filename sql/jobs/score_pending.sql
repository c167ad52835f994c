-- Turns not yet scored by the current classifier versions (a new version makes every turn pending again;
-- view latest_scores then prefers the newest rows).
-- Parameters:
--   $refusal_version, $harm_version, $backend   the loaded classifiers' identity
-- Output columns: turn_id, user_message, assistant_message, date
SELECT t.turn_id, t.user_message, t.assistant_message, t.date
FROM turns AS t
WHERE NOT EXISTS (
    SELECT 1 FROM scores AS s
    WHERE s.turn_id = t.turn_id
      AND s.refusal_version = $refusal_version
      AND s.harm_version = $harm_version
      AND s.backend = $backend
)
ORDER BY t.date, t.turn_id
