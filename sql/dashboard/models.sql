-- Every model name in the metric rollups, so each gets one fixed colour on every page and the review page can
-- offer it as a filter. Reads one column of `metrics_log` (rows per window and key, not per turn); a model's name
-- shows once its first turns are scored and a metric job has run.
-- Parameters: none.
-- Columns: model.
SELECT DISTINCT model FROM metrics_log WHERE model IS NOT NULL ORDER BY model;
