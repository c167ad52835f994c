-- Labelled data for export: every reviewer label joined with the turn it labels and the classifier's latest
-- scores, so the next training round gets text, prediction and human truth in one row.
-- Bounded by ids: turns and scores are filtered to the labelled turns before the latest score is picked (an
-- aggregate, not the `scored_turns` view's ranking of every score row in the lake).
-- `queue_reason` is the review queue's reason for the turn (NULL when the queue did not choose it): with `sample`, it
-- says how the turn was chosen, so an import into another home (whose queue never held the turn) keeps an
-- uncertain or alert item out of the classifiers' error rates (monitor/review_import.py).
-- Parameters: none.
-- Columns: label_id, turn_id, reviewer, labelled_at, refusal_label, prompt_label, refusal_correct, over_refusal,
--   harmful_compliance, value_concern, note, sample, queue_reason, conversation_id, ts, model, model_version,
--   deployment, user_attrs, user_message, assistant_message, predicted_refusal, refusal_score, predicted_prompt_harm,
--   prompt_harm_score, refusal_version, harm_version.
WITH ids AS (
    SELECT DISTINCT turn_id FROM labels
), s AS (
    SELECT turn_id, arg_max(refusal, scored_at) AS refusal, arg_max(refusal_score, scored_at) AS refusal_score,
           arg_max(prompt_harm, scored_at) AS prompt_harm, arg_max(prompt_harm_score, scored_at) AS prompt_harm_score,
           arg_max(refusal_version, scored_at) AS refusal_version, arg_max(harm_version, scored_at) AS harm_version
    FROM scores WHERE turn_id IN (SELECT turn_id FROM ids)
    GROUP BY turn_id
), t AS (
    SELECT turn_id, conversation_id, ts, model, model_version, deployment, user_attrs, user_message,
           assistant_message
    FROM turns WHERE turn_id IN (SELECT turn_id FROM ids)
), q AS (
    SELECT turn_id, any_value(reason) AS queue_reason FROM review_queue GROUP BY turn_id
)
SELECT l.id AS label_id, l.turn_id, l.reviewer, l."at" AS labelled_at, l.refusal_label, l.prompt_label,
       l.refusal_correct, l.over_refusal, l.harmful_compliance, l.value_concern, l.note, l.sample, q.queue_reason,
       t.conversation_id, t.ts, t.model, t.model_version, t.deployment, t.user_attrs, t.user_message,
       t.assistant_message, s.refusal AS predicted_refusal, s.refusal_score, s.prompt_harm AS predicted_prompt_harm,
       s.prompt_harm_score, s.refusal_version, s.harm_version
FROM labels l LEFT JOIN t USING (turn_id) LEFT JOIN s USING (turn_id) LEFT JOIN q USING (turn_id)
ORDER BY l.id;
