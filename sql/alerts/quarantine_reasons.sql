-- The most common reasons input records were quarantined since $since (view `quarantine` over the files of the
-- quarantine dates from $since on), for the quarantine_share rule's message (monitor/alerts/pipeline.py).
-- Parameters: $since (TIMESTAMP); $every (BOOLEAN: every format); $format (VARCHAR: the source format counted when
--   not $every).
-- Output columns: field (the offending field, or NULL), reason, records (BIGINT); the three most common.
SELECT field, reason, count(*) AS records
FROM quarantine
WHERE quarantined_at > $since AND ($every OR source_format = $format)
GROUP BY field, reason
ORDER BY records DESC, reason
LIMIT 3;
