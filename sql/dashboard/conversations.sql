-- Conversation search for review: turns filtered by text, model, segment and event date, then joined with their
-- latest classifier scores and filtered by classifier output and score range; newest first.
-- When no score filter is set the caller passes $prelimit = $limit, so only the newest candidates are joined with
-- scores (fast on a large lake); otherwise $prelimit is large and every candidate is scored-filtered.
-- Candidates carry only their key and time (plus the messages when $q searches them): the wide columns are read
-- for the $limit turns shown, not for every turn of the dates (a day holds ~40k turns on a 1M-turn home).
-- Parameters: $q (case-insensitive substring of the user or assistant message; '' = any), $model ('' = any),
--   $attribute, $value (segment filter; '' = any), $refusal ('' = any, else full_refusal | partial_refusal |
--   compliance), $refused ('' = any, 'yes' = full or partial refusal, 'no' = compliance), $deployment ('' = any),
--   $prompt_harm ('' = any, else harmful | benign), $min_score, $max_score (refusal_score range),
--   $start_date, $end_date (text YYYY-MM-DD, inclusive), $prelimit, $limit.
-- Columns: turn_id, conversation_id, ts, model, deployment, user_attrs, user_message, assistant_message, feedback,
--   refusal, refusal_score, prompt_harm, prompt_harm_score.
WITH cand AS (
    SELECT turn_id, ts
    FROM turns t
    WHERE date >= $start_date AND date <= $end_date
      AND ($q = '' OR user_message ILIKE '%' || $q || '%' OR assistant_message ILIKE '%' || $q || '%')
      AND ($model = '' OR model = $model)
      AND ($deployment = '' OR deployment = $deployment)
      AND ($attribute = '' OR turn_id IN (SELECT turn_id FROM segments WHERE attribute = $attribute
                                          AND value = $value AND date >= $start_date AND date <= $end_date))
    ORDER BY ts DESC
    LIMIT $prelimit
), s AS (
    SELECT turn_id, arg_max(refusal, scored_at) AS refusal, arg_max(refusal_score, scored_at) AS refusal_score,
           arg_max(prompt_harm, scored_at) AS prompt_harm, arg_max(prompt_harm_score, scored_at) AS prompt_harm_score
    -- a score row's `date` is its turn's event date: the same date range skips other days' score files
    FROM scores WHERE turn_id IN (SELECT turn_id FROM cand) AND date >= $start_date AND date <= $end_date
    GROUP BY turn_id
), hit AS (
    SELECT c.turn_id, c.ts, s.refusal, s.refusal_score, s.prompt_harm, s.prompt_harm_score
    FROM cand c LEFT JOIN s USING (turn_id)
    WHERE ($refusal = '' OR s.refusal = $refusal)
      AND ($refused = '' OR (s.refusal <> 'compliance') = ($refused = 'yes'))
      AND ($prompt_harm = '' OR s.prompt_harm = $prompt_harm)
      AND (s.refusal_score IS NULL OR s.refusal_score BETWEEN $min_score AND $max_score)
    ORDER BY c.ts DESC
    LIMIT $limit
)
SELECT t.turn_id, t.conversation_id, t.ts, t.model, t.deployment, t.user_attrs, t.user_message,
       t.assistant_message, t.feedback, hit.refusal, hit.refusal_score, hit.prompt_harm, hit.prompt_harm_score
FROM hit JOIN turns t ON t.turn_id = hit.turn_id AND t.ts = hit.ts
WHERE t.date >= $start_date AND t.date <= $end_date
ORDER BY hit.ts DESC;
