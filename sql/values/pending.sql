-- Turns committed since the values job's last run (view new_turns: see monitor/incremental.py) that this scorer
-- version has not processed yet (a new version, e.g. after a value plugin was added to config, makes every turn
-- new again), with the latest refusal probability when the score job has one.
-- The latest score is ranked as view latest_scores ranks it, among the scores of the new turns only: ranking every
-- score of their dates would cost what a whole busy day costs (0.26 s at 460k turns a day, against 0.12 s).
-- Parameters:
--   $scorer_version        the loaded value scorer's version string
--   $date_min, $date_max   first and last event date among new_turns: other tables are read only there
-- Output columns: turn_id, user_message, assistant_message, refusal_score (NULL when not scored yet), date
SELECT t.turn_id, t.user_message, t.assistant_message, s.refusal_score, t.date
FROM new_turns AS t
LEFT JOIN (
    SELECT turn_id, date, refusal_score FROM (
        SELECT turn_id, date, refusal_score,
               row_number() OVER (PARTITION BY date, turn_id ORDER BY scored_at DESC) AS rn
        FROM scores
        WHERE date BETWEEN $date_min AND $date_max
          AND turn_id IN (SELECT turn_id FROM new_turns)
    ) AS ranked
    WHERE rn = 1
) AS s
  ON s.turn_id = t.turn_id AND s.date = t.date
WHERE NOT EXISTS (
    SELECT 1 FROM value_turns AS v
    WHERE v.turn_id = t.turn_id
      AND v.date BETWEEN $date_min AND $date_max
      AND v.scorer_version = $scorer_version
)
ORDER BY t.date, t.turn_id
