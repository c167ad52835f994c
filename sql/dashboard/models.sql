-- Every model name seen in turns or metrics, so each gets one fixed colour on every page.
-- Parameters: none.
-- Columns: model.
SELECT model FROM (SELECT DISTINCT model FROM turns UNION SELECT DISTINCT model FROM metrics_log)
WHERE model IS NOT NULL ORDER BY model;
