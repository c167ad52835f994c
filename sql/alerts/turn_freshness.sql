-- The newest turn of each source and deployment among the turns files committed since the pipeline-health check's
-- last run (view `new_turns`, see monitor/incremental.py). monitor/alerts/pipeline.py keeps the running maxima in
-- `kv`, so the no_data rule never scans the whole lake: each run reads the files committed since the last one.
-- Parameters: none.
-- Output columns: source, deployment (NULL: turns without one), last_event (TIMESTAMP: the newest event time; a
--   turn stamped after it was ingested counts at its ingest time, so a clock running ahead cannot hide a silence),
--   last_ingest (TIMESTAMP: the newest ingest time).
SELECT source, deployment, max(least(ts, ingested_at)) AS last_event, max(ingested_at) AS last_ingest
FROM new_turns
GROUP BY source, deployment;
