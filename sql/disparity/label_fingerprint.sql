-- Disparity / detector fairness: what the per-group precision and recall rows depend on in the labels and in the
-- new lake files. One row per turn with a refusal label: its latest label (as detector_counts.sql picks it) and
-- how many rows of that turn the views new_turns, new_scores and new_segments hold (the files of the detector's
-- window committed since the rows were last computed). The job recomputes the rows when a latest label changed or
-- a new file holds a row of a labelled turn; new turns, scores and segments of unlabelled turns leave them alone.
-- Parameters: none (the new_* views are scoped by the caller).
-- Output columns: turn_id, refusal_label, new_rows.
WITH lab AS (
    SELECT turn_id, refusal_label FROM (
        SELECT turn_id, refusal_label,
               row_number() OVER (PARTITION BY turn_id ORDER BY "at" DESC, id DESC) AS rn
        FROM labels
        WHERE refusal_label IS NOT NULL
    ) WHERE rn = 1
),
fresh AS (
    SELECT turn_id FROM new_turns WHERE turn_id IN (SELECT turn_id FROM lab)
    UNION ALL
    SELECT turn_id FROM new_scores WHERE turn_id IN (SELECT turn_id FROM lab)
    UNION ALL
    SELECT turn_id FROM new_segments WHERE turn_id IN (SELECT turn_id FROM lab)
)
SELECT l.turn_id, l.refusal_label, count(f.turn_id) AS new_rows
FROM lab l
LEFT JOIN fresh f USING (turn_id)
GROUP BY l.turn_id, l.refusal_label
ORDER BY l.turn_id;
