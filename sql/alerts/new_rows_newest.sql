-- Whether the metric rows committed since the alert engine's last evaluation (view `new_metrics_log`, see
-- monitor/incremental.py) are all strictly newer (computed_at) than every other row of `metrics_log`: then the
-- latest row of every metric key with a new row is among the new rows, and they alone give its series' changed
-- windows (sql/alerts/new_series_history.sql). A compaction that rewrites old rows into new files, or a late
-- commit of an older computation, makes this false.
-- Parameters: none.
-- Output columns: newest (BOOLEAN).
WITH fresh AS (
    SELECT count(*) AS n, count(computed_at) AS dated, min(computed_at) AS lo FROM new_metrics_log
)
SELECT n > 0 AND dated = n AND (SELECT count(*) FROM metrics_log WHERE computed_at >= lo) = n AS newest
FROM fresh;
