-- Example replies behind a value score: the replies of a window scoring highest on one dimension, with the
-- matched lexicon terms and their character spans (lake tables `value_scores` and `value_evidence`).
-- Parameters: $dimension, $model ('' = all models), $scorer_version ('' = any), $start, $end (timestamps,
--   naive UTC; [start, end)), $start_date, $end_date (text YYYY-MM-DD, inclusive: the files to read), $limit.
-- Columns: turn_id, ts, model, score, user_message, assistant_message,
--   spans (list of {term, span_start, span_end}: assistant_message[span_start:span_end] is the matched text).
WITH top AS (
    SELECT t.turn_id, t.ts, t.model, s.score, t.user_message, t.assistant_message
    FROM value_scores s JOIN turns t USING (turn_id)
    WHERE s.dimension = $dimension AND s.score > 0
      AND s.date >= $start_date AND s.date <= $end_date AND t.date >= $start_date AND t.date <= $end_date
      AND ($scorer_version = '' OR s.scorer_version = $scorer_version)
      AND t.ts >= $start AND t.ts < $end
      AND ($model = '' OR t.model = $model)
    ORDER BY s.score DESC, t.turn_id
    LIMIT $limit
), spans AS (
    SELECT e.turn_id, list({'term': e.term, 'span_start': e.span_start, 'span_end': e.span_end}
                           ORDER BY e.span_start) AS spans
    FROM value_evidence e
    WHERE e.dimension = $dimension AND e.turn_id IN (SELECT turn_id FROM top)
      AND e.date >= $start_date AND e.date <= $end_date
      AND ($scorer_version = '' OR e.scorer_version = $scorer_version)
    GROUP BY e.turn_id
)
SELECT top.*, spans.spans FROM top LEFT JOIN spans USING (turn_id)
ORDER BY top.score DESC, top.turn_id;
