-- Value drift: per window and group, the replies by user-message topic and by prompt-harm category (latest
-- `scores`), with how many of them the lexicons could score: the topic and prompt-mix drift tests and the group
-- sizes of the default method, without per-reply rows.
-- Groups: each model (all traffic is the job's sum over the models) and each segment value (all models).
-- Parameters:
--   $granularity      'day' | 'hour'
--   $start, $end      TIMESTAMP: turns with start <= ts < end
--   $date_min, $date_max  VARCHAR 'YYYY-MM-DD': partition pruning bounds covering [start, end)
--   $scorer_version   only value_turns rows of this scorer version
--   $attributes       VARCHAR[]: segment attributes to break down by ([] = no segment rows)
-- Both counts are sums over the group's turns, so the rows of a set of turns are the rows of its parts summed per
-- group (the job caches them per date and adds the new turns' rows).
-- Output columns: window_start, model (NULL on segment rows; NULL model -> 'unknown'), attribute, value (NULL on
--   model rows), kind ('topic' | 'prompt_category'), category (prompt category: the harm category, else the harm
--   label, else 'unscored'; NULL topics are left out), n (replies), n_scored (of which scored)
WITH turn AS (
    SELECT t.turn_id, t.date, date_trunc($granularity, t.ts) AS window_start, coalesce(t.model, 'unknown') AS model,
           v.topic, coalesce(s.prompt_harm_category, s.prompt_harm, 'unscored') AS prompt_category, v.scored
    FROM value_turns AS v
    JOIN turns AS t ON t.turn_id = v.turn_id AND t.date = v.date
    LEFT JOIN latest_scores AS s ON s.turn_id = t.turn_id AND s.date = t.date
    WHERE v.scorer_version = $scorer_version
      AND t.date BETWEEN $date_min AND $date_max
      AND t.ts >= CAST($start AS TIMESTAMP) AND t.ts < CAST($end AS TIMESTAMP)
),
member AS (
    SELECT window_start, model, CAST(NULL AS VARCHAR) AS attribute, CAST(NULL AS VARCHAR) AS value, topic,
           prompt_category, scored
    FROM turn
    UNION ALL
    SELECT t.window_start, CAST(NULL AS VARCHAR) AS model, s.attribute, s.value, t.topic, t.prompt_category, t.scored
    FROM turn AS t
    JOIN (SELECT DISTINCT turn_id, date, attribute, value FROM segments
          WHERE date BETWEEN $date_min AND $date_max AND list_contains($attributes, attribute)
            AND value IS NOT NULL) AS s
      ON s.turn_id = t.turn_id AND s.date = t.date
),
cat AS (
    SELECT window_start, model, attribute, value, 'topic' AS kind, topic AS category, scored
    FROM member WHERE topic IS NOT NULL
    UNION ALL
    SELECT window_start, model, attribute, value, 'prompt_category' AS kind, prompt_category AS category, scored
    FROM member
)
SELECT window_start, model, attribute, value, kind, category,
       count(*) AS n,
       count(*) FILTER (WHERE scored) AS n_scored
FROM cat
GROUP BY window_start, model, attribute, value, kind, category
