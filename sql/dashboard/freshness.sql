-- Data freshness: the newest event time and ingest time in the lake, the turn count, and the newest metric window.
-- `count(*)` is answered from Parquet row counts, but max() reads the column, so the two max() over `turns` read
-- only the date partitions that can hold the answer: $event_dates = the newest event date (a turn's `date` is the
-- date of its `ts`), $ingest_dates = the dates of the files of the newest commit to `turns` (its rows were ingested
-- last), both taken from the lake manifest by the caller. An empty list reads every date (the fallback when the
-- pruned read finds nothing). The metric maxima read `metrics_log`, a rollup (rows per window and key).
-- Parameters: $event_dates, $ingest_dates (lists of 'YYYY-MM-DD'; [] = every date).
-- Columns: latest_event, latest_ingest, turns, quarantined, latest_metric_window, latest_metric_computed.
SELECT (SELECT max(ts) FROM turns WHERE len($event_dates) = 0 OR list_contains($event_dates, date)) AS latest_event,
       (SELECT max(ingested_at) FROM turns
        WHERE len($ingest_dates) = 0 OR list_contains($ingest_dates, date)) AS latest_ingest,
       (SELECT count(*) FROM turns) AS turns,
       (SELECT count(*) FROM quarantine) AS quarantined,
       (SELECT max(window_end) FROM metrics_log) AS latest_metric_window,
       (SELECT max(computed_at) FROM metrics_log) AS latest_metric_computed;
