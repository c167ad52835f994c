-- View `metrics`: the latest computed row of every metric key (metric, granularity, window, model, deployment,
-- segment) from the append-only `metrics_log`. Recomputing a window (late data, a new classifier version)
-- appends new rows; this view shows only the newest run.
-- `family` is part of the key although each metric belongs to one family: a filter on a column of the window's
-- PARTITION BY is pushed below it, so `WHERE family = 'refusal'` reads only that hive partition of metrics_log.
-- Parameters: none. Columns: every column of metrics_log.
CREATE OR REPLACE VIEW metrics AS
SELECT * EXCLUDE (rn) FROM (
    SELECT *, row_number() OVER (
        PARTITION BY family, metric, granularity, window_start, model, deployment, segment
        ORDER BY computed_at DESC, run_id DESC
    ) AS rn
    FROM metrics_log
) WHERE rn = 1;
