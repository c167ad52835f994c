-- Event-time windows a metrics job must recompute: those holding turns with input rows (scores, value scores,
-- segments...) committed since the job's last run. The job builds view new_inputs (turn_id, date) from exactly
-- those files (monitor/incremental.py). A late-ingested turn is scored late, so its old window shows up here.
-- Parameters:
--   $granularity           'day' | 'hour'
--   $date_min, $date_max   first and last event date among the new input files: turns are read only there
-- Output columns: window_start
SELECT DISTINCT date_trunc($granularity, t.ts) AS window_start
FROM new_inputs AS n
JOIN turns AS t ON t.turn_id = n.turn_id AND t.date = n.date
WHERE t.date BETWEEN $date_min AND $date_max
ORDER BY 1
