-- Daily volume and user feedback per model, read from the refusal_metrics rollups (view `metrics`' rows), not
-- from raw turns: `turn_count` (n = scored turns with a refusal label, plus `details.unscored`: scored replies the
-- classifiers could not read, empty or not English, which are in no rate but are traffic all the same) and
-- `thumbs_down_rate` (n = scored turns rated up or down, numerator = thumbs down), all-traffic rows (segment '{}',
-- all deployments) of each model, windows starting in [$start, $end) summed per day (hourly windows add up to their
-- day). Turns not scored yet are not counted.
-- As in metric_series.sql, the key-column filters run before the latest-row pick; a key whose latest row is
-- retired (n = 0: no data left after a recomputation) counts nothing.
-- Parameters: $start, $end (timestamps, naive UTC), $granularity ('day' | 'hour': the rollup windows to read).
-- Columns: day (DATE), model, turns (scored turns), thumbs_up, thumbs_down.
WITH latest AS (
    SELECT metric, window_start, model, n, numerator, unscored
    FROM (
        SELECT metric, window_start, model, n, numerator,
               coalesce(TRY_CAST(json_extract_string(details, '$.unscored') AS BIGINT), 0) AS unscored,
               row_number() OVER (
            PARTITION BY metric, granularity, window_start, model, deployment, segment
            ORDER BY computed_at DESC, run_id DESC
        ) AS rn
        FROM metrics_log
        WHERE metric IN ('turn_count', 'thumbs_down_rate') AND granularity = $granularity
          AND window_start >= $start AND window_start < $end
          AND segment = '{}' AND deployment IS NULL AND model IS NOT NULL
    )
    WHERE rn = 1 AND coalesce(n, 0) + unscored > 0
)
SELECT CAST(date_trunc('day', window_start) AS DATE) AS day, model,
       CAST(coalesce(sum(n + unscored) FILTER (WHERE metric = 'turn_count'), 0) AS BIGINT) AS turns,
       CAST(coalesce(sum(n - numerator) FILTER (WHERE metric = 'thumbs_down_rate'), 0) AS BIGINT) AS thumbs_up,
       CAST(coalesce(sum(numerator) FILTER (WHERE metric = 'thumbs_down_rate'), 0) AS BIGINT) AS thumbs_down
FROM latest
GROUP BY ALL
ORDER BY day, model;
