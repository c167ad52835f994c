-- Reviewer-labelled, scored turns with the reviewers' truth next to the classifiers' latest output: the sample
-- from which the refusal_metrics job measures the classifiers' errors for the error-corrected rates, and from which
-- it estimates the rates of the replies the classifiers left unscored (the label estimate: labelled_*_rate).
-- A turn whose reply was scored without a refusal label (empty, or not English: the score job's language gate) is
-- listed only when it is a random-sample one (`random_sample`): it feeds the label estimate alone, which counts
-- nothing else, and never the error rates (it has no prediction to compare with).
-- Several reviewers may label a turn: each truth is the majority of their votes (refused = full or partial
-- refusal), ties broken by the most recent label (by `at`, then row id). A truth nobody gave is NULL.
-- `queue_reason` says how the turn reached a reviewer: its review_queue reason (uncertain_refusal, uncertain_harm,
-- alert_example, stratified: the queue chose the turn, whoever labelled it and however they found it), else
-- 'targeted_sample' when a label says the turn was picked for a reason (`labels.sample = 'targeted'`: labelled from
-- the dashboard's search, or imported with `--sample targeted`), else 'unqueued'.
-- Parameters:
--   $granularity  'day' | 'hour': window of the turn, as in sql/metrics/refusal_rates.sql
-- Output columns:
--   turn_id, window_start, model, deployment   ('unknown' for a missing model/deployment, as in the metrics)
--   true_refused, true_harmful                   BOOLEAN or NULL: the reviewers' majority
--   pred_refused, pred_harmful                   BOOLEAN or NULL: the latest classifier output
--   reviewers                                    number of reviewers who labelled the turn
--   queue_reason                                 see above
--   segments                                     LIST of {attribute, value}: the turn's segment values
--   reply_unscored                               BOOLEAN: the latest score has no refusal label (the reply is in
--                                                no classifier rate's n; pred_refused is NULL)
--   random_sample                                BOOLEAN: the turn is a random sample of its group's traffic: the
--                                                queue chose it as a stratified item, or (not queued) a label says
--                                                `sample = 'random'` and none says 'targeted'. A label without a
--                                                `sample` on an unqueued turn (made before labels had one) is not.
WITH votes AS (
    SELECT
        turn_id,
        count(*) AS reviewers,
        count(*) FILTER (WHERE refusal_label IN ('full_refusal', 'partial_refusal')) AS r_yes,
        count(*) FILTER (WHERE refusal_label = 'compliance') AS r_no,
        arg_max(refusal_label IN ('full_refusal', 'partial_refusal'),
                "at" || '#' || lpad(CAST(id AS VARCHAR), 12, '0'))
            FILTER (WHERE refusal_label IS NOT NULL) AS r_latest,
        count(*) FILTER (WHERE prompt_label = 'harmful') AS h_yes,
        count(*) FILTER (WHERE prompt_label = 'benign') AS h_no,
        arg_max(prompt_label = 'harmful', "at" || '#' || lpad(CAST(id AS VARCHAR), 12, '0'))
            FILTER (WHERE prompt_label IS NOT NULL) AS h_latest,
        count(*) FILTER (WHERE sample = 'targeted') AS targeted,
        count(*) FILTER (WHERE sample = 'random') AS randomly_picked
    FROM labels
    GROUP BY turn_id
),
queue AS (
    SELECT turn_id, any_value(reason) AS reason FROM review_queue GROUP BY turn_id
),
labelled AS (
    -- The labelled turns first (a scan of turn_id alone), then the scores of their dates only: joining
    -- scored_turns to the votes would rank the latest score of every turn in the lake.
    SELECT turn_id, date, ts, model, deployment FROM turns WHERE turn_id IN (SELECT turn_id FROM votes)
),
segs AS (
    -- Only the labelled turns' segments are aggregated (a semi-join), not the whole table's.
    SELECT turn_id, list(DISTINCT {'attribute': attribute, 'value': value}) AS segments
    FROM segments
    WHERE attribute IS NOT NULL AND value IS NOT NULL
      AND date IN (SELECT date FROM labelled) AND turn_id IN (SELECT turn_id FROM votes)
    GROUP BY turn_id
),
latest AS (
    -- As view latest_scores: the newest score row of each turn (one row, hence the struct).
    SELECT turn_id, arg_max({'refusal': refusal, 'prompt_harm': prompt_harm, 'refusal_version': refusal_version},
                            scored_at) AS s
    FROM scores
    WHERE date IN (SELECT date FROM labelled) AND turn_id IN (SELECT turn_id FROM votes)
    GROUP BY date, turn_id
)
SELECT
    v.turn_id,
    date_trunc($granularity, t.ts) AS window_start,
    coalesce(t.model, 'unknown') AS model,
    coalesce(t.deployment, 'unknown') AS deployment,
    CASE WHEN v.r_yes > v.r_no THEN true WHEN v.r_no > v.r_yes THEN false ELSE v.r_latest END AS true_refused,
    CASE WHEN v.h_yes > v.h_no THEN true WHEN v.h_no > v.h_yes THEN false ELSE v.h_latest END AS true_harmful,
    l.s.refusal IN ('full_refusal', 'partial_refusal') AS pred_refused,
    CASE WHEN l.s.prompt_harm IS NULL THEN NULL ELSE l.s.prompt_harm = 'harmful' END AS pred_harmful,
    v.reviewers,
    coalesce(q.reason, CASE WHEN v.targeted > 0 THEN 'targeted_sample' ELSE 'unqueued' END) AS queue_reason,
    coalesce(g.segments, []) AS segments,
    l.s.refusal IS NULL AS reply_unscored,
    coalesce(q.reason = 'stratified', v.targeted = 0 AND v.randomly_picked > 0) AS random_sample
FROM votes AS v
JOIN labelled AS t ON t.turn_id = v.turn_id
JOIN latest AS l ON l.turn_id = v.turn_id
LEFT JOIN segs AS g ON g.turn_id = v.turn_id
LEFT JOIN queue AS q ON q.turn_id = v.turn_id
WHERE l.s.refusal IS NOT NULL
   OR (l.s.refusal_version IS NOT NULL AND coalesce(q.reason = 'stratified', v.targeted = 0 AND v.randomly_picked > 0))
ORDER BY v.turn_id
