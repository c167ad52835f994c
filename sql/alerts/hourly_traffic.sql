-- Turns per hour of the week (UTC) in ($start, $end], of one deployment or of all: the traffic the no_data rule
-- expects during a silence (monitor/alerts/pipeline.py), read from the event dates of that span only (view `turns`
-- over those dates' files). A silence at hours that are quiet on the previous days (or, with weeks of history, on
-- the same weekdays of the previous weeks) pages nobody. The hour-of-day profile sums the seven weekdays of an hour.
-- Parameters: $start, $end (TIMESTAMP); $source (VARCHAR: glob of the turn sources counted, e.g. 'production' or
--   '*'); $every (BOOLEAN: every deployment); $deployment (VARCHAR: the deployment counted when not $every).
-- Output columns: weekday (0 = Monday .. 6 = Sunday, as Python's date.weekday()), hour (0-23), turns (BIGINT),
--   first_ts (TIMESTAMP: the earliest turn counted in that hour of the week).
SELECT isodow(ts) - 1 AS weekday, hour(ts) AS hour, count(*) AS turns, min(ts) AS first_ts
FROM turns
WHERE ts > $start AND ts <= $end AND coalesce(source, '') GLOB $source
  AND ($every OR deployment = $deployment)
GROUP BY weekday, hour
ORDER BY weekday, hour;
