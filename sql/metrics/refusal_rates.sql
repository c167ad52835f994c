-- Metric family `refusal`: the counts behind refusal_rate, over_refusal_rate, under_refusal_rate,
-- partial_refusal_share, turn_count and thumbs_down_rate, per event-time window, per model, per deployment and
-- per segment (attribute = value). Only scored turns count (latest classifier version per turn, view
-- scored_turns); a turn whose reply got no label although it was scored (empty, or in a language the English-only
-- models do not read: monitor/jobs/score.py, language gate) is counted as `unscored`, never in n. "Refused" means a
-- full or a partial refusal. Rates, Wilson intervals and the
-- error-corrected values are computed from these counts by the refusal_metrics job (monitor/stats.py).
-- Groups: all traffic, per model, per deployment; each of them also per segment value.
-- Parameters:
--   $granularity  'day' | 'hour': window length (windows start at date_trunc($granularity, ts), UTC)
--   $windows      TIMESTAMP[]: the window starts to compute (only turns in these windows are read)
--   $date_min, $date_max  VARCHAR 'YYYY-MM-DD': partition pruning bounds covering the windows
--   $attributes   VARCHAR[]: segment attributes to break down by ([] = no segment rows)
-- Output columns:
--   window_start, window_end     the event-time window [start, end)
--   model, deployment            NULL = all models / all deployments
--   seg_attribute, seg_value     NULL = all traffic
--   n                            scored turns (with a refusal label)
--   unscored                     turns scored without a refusal label (empty or not English reply): not in n
--   harm_unscored                turns in n whose prompt has no harm label (empty or not English prompt)
--   refusals, partial_refusals   turns classified as refusing (full or partial) / as partial refusal
--   benign_complied, benign_refused, harmful_complied, harmful_refused
--                                the observed 2x2 table of predicted prompt harm x predicted refusal
--                                (turns whose prompt has no harm label are in n but in none of these)
--   feedback_n, thumbs_down      turns with user feedback (up or down) / with a thumbs down, unscored ones included
--                                (a thumbs down needs no classifier)
WITH base AS (
    SELECT
        turn_id,
        date_trunc($granularity, ts) AS window_start,
        coalesce(model, 'unknown') AS model,
        coalesce(deployment, 'unknown') AS deployment,
        refusal,
        prompt_harm,
        feedback
    FROM scored_turns
    WHERE date BETWEEN $date_min AND $date_max
      AND refusal_version IS NOT NULL  -- scored (a label or, for an unreadable reply, none); not pending
      AND list_contains($windows, date_trunc($granularity, ts))
),
tagged AS (
    SELECT window_start, model, deployment, CAST(NULL AS VARCHAR) AS seg_attribute,
           CAST(NULL AS VARCHAR) AS seg_value, refusal, prompt_harm, feedback
    FROM base
    UNION ALL
    SELECT b.window_start, b.model, b.deployment, s.attribute AS seg_attribute, s.value AS seg_value,
           b.refusal, b.prompt_harm, b.feedback
    FROM base AS b
    JOIN (SELECT DISTINCT turn_id, attribute, value FROM segments WHERE date BETWEEN $date_min AND $date_max) AS s
      ON s.turn_id = b.turn_id
    WHERE list_contains($attributes, s.attribute) AND s.value IS NOT NULL
)
SELECT
    window_start,
    window_start + CASE WHEN $granularity = 'hour' THEN INTERVAL 1 HOUR ELSE INTERVAL 1 DAY END AS window_end,
    CASE WHEN GROUPING(model) = 1 THEN NULL ELSE model END AS model,
    CASE WHEN GROUPING(deployment) = 1 THEN NULL ELSE deployment END AS deployment,
    seg_attribute,
    seg_value,
    count(*) FILTER (WHERE refusal IS NOT NULL) AS n,
    count(*) FILTER (WHERE refusal IS NULL) AS unscored,
    count(*) FILTER (WHERE refusal IS NOT NULL AND prompt_harm IS NULL) AS harm_unscored,
    count(*) FILTER (WHERE refusal IN ('full_refusal', 'partial_refusal')) AS refusals,
    count(*) FILTER (WHERE refusal = 'partial_refusal') AS partial_refusals,
    count(*) FILTER (WHERE prompt_harm = 'benign' AND refusal = 'compliance') AS benign_complied,
    count(*) FILTER (WHERE prompt_harm = 'benign' AND refusal IN ('full_refusal', 'partial_refusal')) AS benign_refused,
    count(*) FILTER (WHERE prompt_harm = 'harmful' AND refusal = 'compliance') AS harmful_complied,
    count(*) FILTER (WHERE prompt_harm = 'harmful' AND refusal IN ('full_refusal', 'partial_refusal')) AS harmful_refused,
    count(*) FILTER (WHERE feedback IN ('up', 'down')) AS feedback_n,
    count(*) FILTER (WHERE feedback = 'down') AS thumbs_down
FROM tagged
GROUP BY GROUPING SETS (
    (window_start, seg_attribute, seg_value),
    (window_start, model, seg_attribute, seg_value),
    (window_start, deployment, seg_attribute, seg_value)
)
ORDER BY window_start, model NULLS FIRST, deployment NULLS FIRST, seg_attribute NULLS FIRST, seg_value
