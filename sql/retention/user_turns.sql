-- The turns of one user, to be deleted on their request: every turn carrying the user id, plus the turns without
-- a user id in the same conversations (a later message of a conversation may come without its user block).
-- Parameters: $files (list of the turns Parquet files of the current manifest), $user_id (the exact user id).
-- Output columns: turn_id, conversation_id, file (the Parquet file holding the row), matched_by (user_id |
-- conversation), content_hash (kept, with turn_id, so a later ingest of the same record skips it).
WITH t AS MATERIALIZED (
    SELECT turn_id, conversation_id, user_id, content_hash, filename AS file
    FROM read_parquet($files, filename = true, union_by_name = true, hive_partitioning = false)
),
own AS (SELECT DISTINCT conversation_id FROM t WHERE user_id = $user_id)
SELECT turn_id, conversation_id, file, 'user_id' AS matched_by, content_hash FROM t WHERE user_id = $user_id
UNION ALL
SELECT turn_id, conversation_id, file, 'conversation' AS matched_by, content_hash FROM t
WHERE user_id IS NULL AND conversation_id IN (SELECT conversation_id FROM own);
