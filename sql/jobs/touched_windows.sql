-- Event-time windows a metrics job must recompute: those holding turns with input rows (scores, value scores,
-- segments...) committed since the job's last run. The job builds view new_inputs (turn_id, date) from exactly
-- those files (monitor/incremental.py). A late-ingested turn is scored late, so its old window shows up here.
-- A daily window is its turns' event date, which every input row carries as its partition (the turn's UTC date):
-- no turn needs reading, so the cost is that of the new rows, not of the days they fall in (a busy day holds
-- hundreds of thousands of turns). An hourly window needs the turn's timestamp. The granularity filters are
-- constant once the parameter is bound, so only one branch runs.
-- Parameters:
--   $granularity           'day' | 'hour'
--   $date_min, $date_max   first and last event date among the new input files: turns are read only there
-- Output columns: window_start
SELECT DISTINCT CAST(CAST(n.date AS DATE) AS TIMESTAMP) AS window_start
FROM new_inputs AS n
WHERE $granularity = 'day'
  AND n.date BETWEEN $date_min AND $date_max
UNION
SELECT DISTINCT date_trunc($granularity, t.ts) AS window_start
FROM new_inputs AS n
JOIN turns AS t ON t.turn_id = n.turn_id AND t.date = n.date
WHERE $granularity <> 'day'
  AND t.date BETWEEN $date_min AND $date_max
ORDER BY 1
