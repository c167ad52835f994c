-- Disparity / detector fairness: what the per-group precision and recall rows depend on besides their window,
-- so the job recomputes them only when reviewer labels or classifier scores changed (or the day rolled over).
-- Parameters: none.
-- Output columns: labels (count of refusal labels), max_label_id, max_label_at, max_scored_at.
SELECT (SELECT count(*) FROM labels WHERE refusal_label IS NOT NULL) AS labels,
       (SELECT max(id) FROM labels) AS max_label_id,
       (SELECT max("at") FROM labels) AS max_label_at,
       (SELECT max(scored_at) FROM scores) AS max_scored_at;
