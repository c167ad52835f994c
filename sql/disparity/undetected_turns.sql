-- Disparity: turns committed since the language detector's last run (view new_turns, see monitor/incremental.py)
-- whose user message has no detected_language segment yet (input of language detection).
-- Parameters: $date_min, $date_max (first and last event date among new_turns: segments are read only there).
-- Output columns: turn_id, date, ts, user_message.
SELECT t.turn_id, t.date, t.ts, t.user_message
FROM new_turns t
WHERE NOT EXISTS (
    SELECT 1 FROM segments s
    WHERE s.turn_id = t.turn_id AND s.attribute = 'detected_language' AND s.date = t.date
      AND s.date BETWEEN $date_min AND $date_max
)
ORDER BY t.ts, t.turn_id;
