-- Segment attributes and their values with recent traffic, for the review page's segment picker, read from the
-- refusal_metrics rollups instead of the whole `segments` table: the latest `turn_count` rows of all models and
-- all deployments whose segment holds exactly one attribute (e.g. {"language": "hi"}), n and `details.unscored`
-- (replies the classifiers could not read: a language answered in its own language has only these, and is the
-- traffic most in need of labels) summed over windows starting in [$start, $end). Only the attributes the
-- refusal_metrics job breaks down by (docs/refusal.md) appear; a key whose latest row is retired (n = 0) counts
-- nothing.
-- Parameters: $start, $end (timestamps, naive UTC: the recent period to count), $granularity ('day' | 'hour').
-- Columns: attribute, value, turns (scored turns in the period, with or without a label).
WITH latest AS (
    SELECT segment, n + unscored AS n
    FROM (
        SELECT segment, n, coalesce(TRY_CAST(json_extract_string(details, '$.unscored') AS BIGINT), 0) AS unscored,
               row_number() OVER (
            PARTITION BY metric, granularity, window_start, model, deployment, segment
            ORDER BY computed_at DESC, run_id DESC
        ) AS rn
        FROM metrics_log
        WHERE metric = 'turn_count' AND granularity = $granularity
          AND window_start >= $start AND window_start < $end
          AND model IS NULL AND deployment IS NULL AND segment <> '{}'
    )
    WHERE rn = 1 AND coalesce(n, 0) + unscored > 0
), seg AS (
    SELECT CAST(CAST(segment AS JSON) AS MAP(VARCHAR, VARCHAR)) AS m, n FROM latest
)
SELECT map_keys(m)[1] AS attribute, map_values(m)[1] AS value, CAST(sum(n) AS BIGINT) AS turns
FROM seg
WHERE cardinality(m) = 1
GROUP BY ALL
ORDER BY attribute, turns DESC, value;
