-- Reviewer labels against the classifiers' latest outputs: the counts from which each classifier's sensitivity
-- and specificity are estimated for the error-corrected rates. One label per turn: the newest reviewer's.
-- Parameters: none.
-- Output columns:
--   refusal_tp, refusal_pos   labelled refusals (full or partial) / those the refusal classifier called refusals
--   refusal_tn, refusal_neg   labelled compliances / those it called compliance
--   harm_tp, harm_pos         labelled harmful prompts / those the harm classifier called harmful
--   harm_tn, harm_neg         labelled benign prompts / those it called benign
WITH refusal_labels AS (
    SELECT turn_id, refusal_label FROM (
        SELECT turn_id, refusal_label,
               row_number() OVER (PARTITION BY turn_id ORDER BY "at" DESC, id DESC) AS rn
        FROM labels WHERE refusal_label IS NOT NULL
    ) WHERE rn = 1
),
prompt_labels AS (
    SELECT turn_id, prompt_label FROM (
        SELECT turn_id, prompt_label,
               row_number() OVER (PARTITION BY turn_id ORDER BY "at" DESC, id DESC) AS rn
        FROM labels WHERE prompt_label IS NOT NULL
    ) WHERE rn = 1
),
r AS (
    SELECT l.refusal_label IN ('full_refusal', 'partial_refusal') AS truth,
           s.refusal IN ('full_refusal', 'partial_refusal') AS pred
    FROM refusal_labels AS l JOIN latest_scores AS s ON s.turn_id = l.turn_id
    WHERE s.refusal IS NOT NULL
),
h AS (
    SELECT l.prompt_label = 'harmful' AS truth, s.prompt_harm = 'harmful' AS pred
    FROM prompt_labels AS l JOIN latest_scores AS s ON s.turn_id = l.turn_id
    WHERE s.prompt_harm IS NOT NULL
)
SELECT
    (SELECT count(*) FILTER (WHERE truth AND pred) FROM r) AS refusal_tp,
    (SELECT count(*) FILTER (WHERE truth) FROM r) AS refusal_pos,
    (SELECT count(*) FILTER (WHERE NOT truth AND NOT pred) FROM r) AS refusal_tn,
    (SELECT count(*) FILTER (WHERE NOT truth) FROM r) AS refusal_neg,
    (SELECT count(*) FILTER (WHERE truth AND pred) FROM h) AS harm_tp,
    (SELECT count(*) FILTER (WHERE truth) FROM h) AS harm_pos,
    (SELECT count(*) FILTER (WHERE NOT truth AND NOT pred) FROM h) AS harm_tn,
    (SELECT count(*) FILTER (WHERE NOT truth) FROM h) AS harm_neg
