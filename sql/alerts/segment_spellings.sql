-- Every segment text written for each metric since a time: a segment spelt two ways (keys in another order) is one
-- alert series but two metric keys, whose latest rows may sit in different runs' files, so such series are read
-- from the whole log (sql/alerts/series_history.sql), never from the new rows alone.
-- Parameters: $since (TIMESTAMP: windows starting before it are outside the evaluated history), $metrics
--   (VARCHAR[]: metric names).
-- Output columns: metric, segment (JSON text as written).
SELECT DISTINCT metric, segment
FROM metrics_log
WHERE window_start >= $since AND metric IN (SELECT unnest($metrics::VARCHAR[]));
