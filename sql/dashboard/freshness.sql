-- Data freshness: the newest event time and ingest time in the lake, the turn count, and the newest metric window.
-- Parameters: none.
-- Columns: latest_event, latest_ingest, turns, quarantined, latest_metric_window, latest_metric_computed.
SELECT (SELECT max(ts) FROM turns) AS latest_event,
       (SELECT max(ingested_at) FROM turns) AS latest_ingest,
       (SELECT count(*) FROM turns) AS turns,
       (SELECT count(*) FROM quarantine) AS quarantined,
       (SELECT max(window_end) FROM metrics_log) AS latest_metric_window,
       (SELECT max(computed_at) FROM metrics_log) AS latest_metric_computed;
