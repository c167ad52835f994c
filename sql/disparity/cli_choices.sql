-- Disparity CLI: the models, attributes and days that have disparity rows, to name valid choices when a
-- `monitor disparity` filter matches nothing.
-- Parameters: none.
-- Output columns: model (NULL = all models), attribute, day (DATE of the window start), rows.
SELECT model, json_extract_string(details, '$.attribute') AS attribute, CAST(window_start AS DATE) AS day,
       count(*) AS rows
FROM metrics
WHERE family = 'disparity' AND metric LIKE '%disparity'
GROUP BY 1, 2, 3
ORDER BY 3 DESC, 1 NULLS FIRST, 2;
