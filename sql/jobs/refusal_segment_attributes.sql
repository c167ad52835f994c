-- The segment attributes present in the lake, with how many turns carry each: candidates for the per-segment
-- breakdown of the refusal metrics (config metrics.segment_attributes / exclude_attributes then filter them).
-- Parameters: none.
-- Output columns: attribute, turns
SELECT attribute, count(DISTINCT turn_id) AS turns
FROM segments
WHERE attribute IS NOT NULL
GROUP BY attribute
ORDER BY attribute
