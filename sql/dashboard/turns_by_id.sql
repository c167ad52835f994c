-- Full rows of the given turns with their latest classifier scores (alert examples, review items, drill-downs).
-- Scores are filtered to the given turns (and, when given, to the event dates: a score row's `date` is its turn's
-- event date) before picking the latest version, so the cost does not grow with the size of the lake the way the
-- `scored_turns` view would.
-- Parameters: $ids (list of turn ids), $start_date, $end_date (event dates YYYY-MM-DD to look in, which lets
--   DuckDB skip other days' files; '' = every date).
-- Columns: every column of turns plus refusal, refusal_score, prompt_harm, prompt_harm_score, prompt_harm_category.
WITH s AS (
    SELECT turn_id, arg_max(refusal, scored_at) AS refusal, arg_max(refusal_score, scored_at) AS refusal_score,
           arg_max(prompt_harm, scored_at) AS prompt_harm, arg_max(prompt_harm_score, scored_at) AS prompt_harm_score,
           arg_max(prompt_harm_category, scored_at) AS prompt_harm_category
    FROM scores
    WHERE list_contains($ids, turn_id)
      AND ($start_date = '' OR date >= $start_date) AND ($end_date = '' OR date <= $end_date)
    GROUP BY turn_id
)
SELECT t.*, s.refusal, s.refusal_score, s.prompt_harm, s.prompt_harm_score, s.prompt_harm_category
FROM turns t LEFT JOIN s USING (turn_id)
WHERE list_contains($ids, t.turn_id)
  AND ($start_date = '' OR t.date >= $start_date) AND ($end_date = '' OR t.date <= $end_date)
ORDER BY t.ts;
