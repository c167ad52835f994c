-- The series with metric rows committed since the alert engine's last evaluation (view `new_metrics_log`, see
-- monitor/incremental.py), with the first and last window that got a row: only these series are evaluated again.
-- Parameters: $since (TIMESTAMP: windows starting before it are outside the evaluated history).
-- Output columns: metric, granularity, model, deployment, segment (JSON text as written), first_changed,
--   last_changed (TIMESTAMP window starts).
SELECT metric, granularity, model, deployment, segment, min(window_start) AS first_changed,
       max(window_start) AS last_changed
FROM new_metrics_log
WHERE window_start >= $since
GROUP BY metric, granularity, model, deployment, segment;
