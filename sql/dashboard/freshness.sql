-- Data freshness: the newest event time and ingest time in the lake, and the newest metric window and run.
-- max() reads the column, so `turns` is read once (each reference to the view costs a look at every file's
-- schema) and only in the date partitions that can hold the answers: $event_dates = the newest event date (a
-- turn's `date` is the date of its `ts`), $ingest_dates = the dates of the files of the newest commit to `turns`
-- (its rows were ingested last), both taken from the lake manifest by the caller, which also counts turns and
-- quarantined records from the manifest's per-file row counts. An empty list reads every date (the fallback
-- when the pruned read finds nothing). The metric maxima read `metrics_log`, a rollup (rows per window and key).
-- Parameters: $event_dates, $ingest_dates (lists of 'YYYY-MM-DD'; [] = every date).
-- Columns: latest_event, latest_ingest, latest_metric_window, latest_metric_computed.
WITH t AS (
    SELECT max(ts) FILTER (WHERE len($event_dates) = 0 OR list_contains($event_dates, date)) AS latest_event,
           max(ingested_at) FILTER (WHERE len($ingest_dates) = 0 OR list_contains($ingest_dates, date))
               AS latest_ingest
    FROM turns
    WHERE len($event_dates) = 0 OR len($ingest_dates) = 0
       OR list_contains($event_dates, date) OR list_contains($ingest_dates, date)
)
SELECT t.latest_event, t.latest_ingest,
       (SELECT max(window_end) FROM metrics_log) AS latest_metric_window,
       (SELECT max(computed_at) FROM metrics_log) AS latest_metric_computed
FROM t;
