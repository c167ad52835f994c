-- Disparity / detector fairness: what the per-group precision and recall rows depend on in the labels. One row per
-- turn with a refusal label: its latest label (as detector_counts.sql picks it). The job recomputes the rows when a
-- latest label changed; a new vote repeating a turn's latest label leaves them alone.
-- Parameters: none.
-- Output columns: turn_id, refusal_label.
-- Only random-sample labels count, as in detector_counts.sql (a turn that becomes targeted leaves the rows).
WITH targeted AS (
    SELECT turn_id FROM review_queue WHERE reason <> 'stratified'
    UNION
    SELECT turn_id FROM labels WHERE sample = 'targeted' AND turn_id NOT IN (SELECT turn_id FROM review_queue)
)
SELECT turn_id, refusal_label FROM (
    SELECT turn_id, refusal_label,
           row_number() OVER (PARTITION BY turn_id ORDER BY "at" DESC, id DESC) AS rn
    FROM labels
    WHERE refusal_label IS NOT NULL AND turn_id NOT IN (SELECT turn_id FROM targeted)
) WHERE rn = 1
ORDER BY turn_id;
