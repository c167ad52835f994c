-- Segment attributes present in segment rows committed since the attribute registry was last updated (view
-- new_segments, see monitor/incremental.py `segment_attributes`): the registry in `kv` accumulates them, so no
-- job scans the whole segments table to learn which attributes exist.
-- Parameters: none.
-- Output columns: attribute
SELECT DISTINCT attribute
FROM new_segments
WHERE attribute IS NOT NULL
ORDER BY attribute
