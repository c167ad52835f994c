-- Event date of each reviewer-labelled turn found in the `turns` view: the refusal_metrics job keeps them in `kv`
-- so that reading the labelled turns (sql/jobs/refusal_labelled_turns.sql) needs only their date partitions.
-- Parameters: none (the job points the `turns` view at the files to search).
-- Output columns: turn_id, date
SELECT DISTINCT turn_id, date
FROM turns
WHERE turn_id IN (SELECT turn_id FROM labels)
