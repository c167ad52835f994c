-- Disparity: the segment attributes present in the lake, with how many turns carry each.
-- Parameters: none.
-- Output columns: attribute, turns.
SELECT attribute, count(DISTINCT turn_id) AS turns
FROM segments
GROUP BY attribute
ORDER BY attribute;
