-- Evidence behind a value move: for one dimension, the lexicon terms matched in the current window's replies and
-- in the reference window's replies (lake table `value_evidence`), with how many scored replies each side has,
-- so the page can show which terms' share of replies went up or down.
-- Parameters: $dimension, $model ('' = all models), $scorer_version ('' = any), $cur_start, $cur_end,
--   $ref_start, $ref_end (timestamps, naive UTC; [start, end)), $min_date, $max_date (text YYYY-MM-DD spanning
--   both windows: lets DuckDB skip other days' files).
-- Columns: term, cur_replies, ref_replies (distinct replies with the term), cur_n, ref_n (scored replies).
WITH t AS (
    SELECT turn_id, ts >= $cur_start AND ts < $cur_end AS is_cur
    FROM turns
    WHERE date >= $min_date AND date <= $max_date
      AND ((ts >= $cur_start AND ts < $cur_end) OR (ts >= $ref_start AND ts < $ref_end))
      AND ($model = '' OR model = $model)
), scored AS (
    SELECT DISTINCT t.turn_id, t.is_cur
    FROM value_turns v JOIN t USING (turn_id)
    WHERE v.scored AND v.date >= $min_date AND v.date <= $max_date
      AND ($scorer_version = '' OR v.scorer_version = $scorer_version)
), n AS (
    SELECT count(*) FILTER (WHERE is_cur) AS cur_n, count(*) FILTER (WHERE NOT is_cur) AS ref_n FROM scored
), ev AS (
    SELECT e.term, count(DISTINCT e.turn_id) FILTER (WHERE s.is_cur) AS cur_replies,
           count(DISTINCT e.turn_id) FILTER (WHERE NOT s.is_cur) AS ref_replies
    FROM value_evidence e JOIN scored s USING (turn_id)
    WHERE e.dimension = $dimension AND e.date >= $min_date AND e.date <= $max_date
      AND ($scorer_version = '' OR e.scorer_version = $scorer_version)
    GROUP BY e.term
)
SELECT ev.term, ev.cur_replies, ev.ref_replies, n.cur_n, n.ref_n
FROM ev CROSS JOIN n
ORDER BY ev.cur_replies DESC, ev.term;
