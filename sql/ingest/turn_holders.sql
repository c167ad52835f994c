-- The stored turns holding some turn_ids, to tell a re-logged exchange (same prompt and reply: a duplicate) from
-- a different reply under a taken turn_id (quarantined). Runs only for batches with such clashes.
-- Parameters: $files (list of turns Parquet files), $ids (list of turn_ids).
-- Output columns: turn_id, user_message, assistant_message, source_file, source_line (one row per turn_id).
SELECT DISTINCT ON (turn_id) turn_id, user_message, assistant_message, source_file, source_line
FROM read_parquet($files)
WHERE turn_id IN (SELECT unnest($ids));
