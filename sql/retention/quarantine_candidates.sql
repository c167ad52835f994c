-- Quarantined raw records whose text contains a user id anywhere: candidates only, the caller keeps those where
-- the id is the value of a user-id field (monitor/retention.py `mentions_user`), so a message that merely quotes
-- the string is not taken for the user's record.
-- Parameters: $files (list of the quarantine Parquet files of the current manifest), $user_id (the exact id),
-- $user_id_json (the id as an ASCII JSON string body, e.g. caf\u00e9 for café: raw JSON may escape it).
-- Output columns: quarantine_id, raw, file.
SELECT quarantine_id, raw, filename AS file
FROM read_parquet($files, filename = true, union_by_name = true, hive_partitioning = false)
WHERE contains(raw, $user_id) OR contains(raw, $user_id_json);
