-- The metric names present, so alert evaluation reads only the metrics some rule watches. `metrics_log` holds the
-- same names as the view `metrics` without the cost of picking every key's latest row.
-- Parameters: none.
-- Output columns: metric.
SELECT DISTINCT metric FROM metrics_log;
