-- Disparity: turns whose user message has no detected_language segment yet (input of language detection).
-- Parameters: none.
-- Output columns: turn_id, date, ts, user_message.
SELECT t.turn_id, t.date, t.ts, t.user_message
FROM turns t
WHERE NOT EXISTS (
    SELECT 1 FROM segments s
    WHERE s.turn_id = t.turn_id AND s.attribute = 'detected_language' AND s.date = t.date
)
ORDER BY t.ts, t.turn_id;
