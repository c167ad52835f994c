-- Turns the values job has not yet processed with the current scorer version (a new version, e.g. after a value
-- plugin was added to config, makes every turn pending once), with the latest refusal probability when the score
-- job has one.
-- Parameters:
--   $scorer_version   the loaded value scorer's version string
-- Output columns: turn_id, user_message, assistant_message, refusal_score (NULL when not scored yet), date
SELECT t.turn_id, t.user_message, t.assistant_message, s.refusal_score, t.date
FROM turns AS t
LEFT JOIN latest_scores AS s ON s.turn_id = t.turn_id
WHERE NOT EXISTS (
    SELECT 1 FROM value_turns AS v
    WHERE v.turn_id = t.turn_id AND v.scorer_version = $scorer_version
)
ORDER BY t.date, t.turn_id
