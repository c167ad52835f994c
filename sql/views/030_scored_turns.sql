-- View `scored_turns`: each turn joined with its latest classifier scores (null scores = not yet scored).
-- Joined on (date, turn_id), not turn_id alone: both carry the event date, and the date lets a filter on
-- scored_turns.date prune the scores partitions too.
-- Parameters: none. Columns: turns.* plus refusal, refusal_score, prompt_harm, prompt_harm_score,
-- prompt_harm_category, refusal_version, harm_version.
CREATE OR REPLACE VIEW scored_turns AS
SELECT t.*, s.refusal, s.refusal_score, s.prompt_harm, s.prompt_harm_score, s.prompt_harm_category,
       s.refusal_version, s.harm_version
FROM turns t LEFT JOIN latest_scores s USING (date, turn_id);
