-- Quarantined input records with their retry status (from the state table quarantine_status, registered as
-- `status`), newest first.
-- Parameters: $files (list of quarantine Parquet files), $include_resolved (true to list records already
-- re-ingested or dismissed), $ids (list of quarantine ids to keep; empty = all).
-- Output columns: quarantine_id, source_file, source_line, source_format, field, reason, raw, quarantined_at,
-- status (open | retried | ingested | dismissed), status_at, note.
SELECT q.quarantine_id, q.source_file, q.source_line, q.source_format, q.field, q.reason, q.raw,
       q.quarantined_at, coalesce(s.status, 'open') AS status, s.at AS status_at, s.note
FROM read_parquet($files, hive_partitioning = true) q
LEFT JOIN status s USING (quarantine_id)
WHERE ($include_resolved OR coalesce(s.status, 'open') IN ('open', 'retried'))
  AND (len($ids) = 0 OR list_contains($ids, q.quarantine_id))
ORDER BY q.quarantined_at DESC, q.source_file, q.source_line;
