-- Turns of an event-time range as the value_drift job compares them: window, model, prompt topic, prompt-harm
-- category and whether the lexicons could score the reply.
-- Parameters:
--   $granularity      'day' | 'hour'
--   $start, $end      TIMESTAMP: turns with start <= ts < end
--   $date_min, $date_max  VARCHAR 'YYYY-MM-DD': partition pruning bounds covering [start, end)
--   $scorer_version   only value_turns rows of this scorer version
-- Output columns: turn_id, window_start, model (NULL -> 'unknown'), topic, prompt_category (the harm category,
--   else the harm label, else 'unscored'), scored
SELECT t.turn_id,
       date_trunc($granularity, t.ts) AS window_start,
       coalesce(t.model, 'unknown') AS model,
       v.topic,
       coalesce(s.prompt_harm_category, s.prompt_harm, 'unscored') AS prompt_category,
       v.scored
FROM value_turns AS v
JOIN turns AS t ON t.turn_id = v.turn_id AND t.date = v.date
LEFT JOIN latest_scores AS s ON s.turn_id = t.turn_id AND s.date = t.date
WHERE v.scorer_version = $scorer_version
  AND t.date BETWEEN $date_min AND $date_max
  AND t.ts >= CAST($start AS TIMESTAMP) AND t.ts < CAST($end AS TIMESTAMP)
