-- Segment attributes present in the lake with the number of turns carrying each: candidates for the per-segment
-- breakdown of the value metrics (config metrics.segment_attributes / exclude_attributes filter them).
-- Parameters: none.
-- Output columns: attribute, turns
SELECT attribute, count(DISTINCT turn_id) AS turns
FROM segments
WHERE attribute IS NOT NULL
GROUP BY attribute
ORDER BY attribute
