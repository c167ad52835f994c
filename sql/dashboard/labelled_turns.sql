-- Labelled data for export: every reviewer label joined with the turn it labels and the classifier's latest
-- scores, so the next training round gets text, prediction and human truth in one row.
-- Parameters: none.
-- Columns: label_id, turn_id, reviewer, labelled_at, refusal_label, prompt_label, refusal_correct, over_refusal,
--   harmful_compliance, value_concern, note, conversation_id, ts, model, model_version, deployment, user_attrs,
--   user_message, assistant_message, predicted_refusal, refusal_score, predicted_prompt_harm, prompt_harm_score,
--   refusal_version, harm_version.
SELECT l.id AS label_id, l.turn_id, l.reviewer, l."at" AS labelled_at, l.refusal_label, l.prompt_label,
       l.refusal_correct, l.over_refusal, l.harmful_compliance, l.value_concern, l.note,
       t.conversation_id, t.ts, t.model, t.model_version, t.deployment, t.user_attrs, t.user_message,
       t.assistant_message, t.refusal AS predicted_refusal, t.refusal_score, t.prompt_harm AS predicted_prompt_harm,
       t.prompt_harm_score, t.refusal_version, t.harm_version
FROM labels l LEFT JOIN scored_turns t USING (turn_id)
ORDER BY l.id;
