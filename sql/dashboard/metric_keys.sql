-- What a metrics page can offer before loading any rows: the metric names matching a LIKE pattern with windows in
-- [$start, $end), and for each the value dimensions its segments carry (NULL when none), with row counts. Lets the
-- Disparity page load one metric (and one dimension of value_disparity) instead of every disparity row.
-- Parameters: $pattern (LIKE pattern, e.g. '%disparity%'), $start, $end (timestamps, naive UTC),
--   $granularity ('day' | 'hour').
-- Columns: metric, dimension, rows.
SELECT metric, json_extract_string(segment, '$.dimension') AS dimension, count(*) AS rows
FROM metrics_log
WHERE metric LIKE $pattern AND window_start >= $start AND window_start < $end AND granularity = $granularity
GROUP BY ALL
ORDER BY metric, dimension;
