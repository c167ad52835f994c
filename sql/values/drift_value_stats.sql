-- Value drift (default method): per window, group and value dimension, the sums behind the standardised mean
-- difference, the pooled t-test and Fisher's test on the non-zero share, so that the value_drift job compares a
-- window with the sum of its reference windows without loading a row per reply.
-- Most scores are exactly 0 (about 90%), so only the non-zero scores are broken down by group; the zeros are
-- counted from the replies: a reply with a score on every dimension adds 1 to `n_complete` of each of its groups,
-- and the (rare) replies missing a dimension (e.g. `refusal` before the classifier scored them) are counted per
-- dimension in `n_partial`. Scores that are NULL or NaN count as missing, as in a per-reply frame.
-- Groups: each model and each segment value (all models); all traffic is the job's sum over the models.
-- Parameters:
--   $granularity      'day' | 'hour'
--   $start, $end      TIMESTAMP: turns with start <= ts < end
--   $date_min, $date_max  VARCHAR 'YYYY-MM-DD': partition pruning bounds covering [start, end)
--   $scorer_version   only value_turns / value_scores rows of this scorer version
--   $dimensions       VARCHAR[]: the scorer's dimensions (other dimensions are ignored)
--   $attributes       VARCHAR[]: segment attributes to break down by ([] = no segment rows)
-- Every output column but the group key is a count or a sum over the group's turns, so the rows of a set of turns
-- are the rows of its parts summed per group (the job caches them per date and adds the new turns' rows).
-- Output columns: window_start, model (NULL on segment rows; NULL model -> 'unknown'), attribute, value (NULL on
--   model rows), dimension (NULL on the rows giving n_complete), n_complete (scored replies with a score on every
--   dimension), n_partial (scores of the other scored replies), n_nonzero (scores <> 0), total (sum of scores),
--   total_sq (sum of squared scores), positive (scores > 0), negative (scores < 0), infinite (infinite scores)
WITH turn AS (
    SELECT t.turn_id, t.date, date_trunc($granularity, t.ts) AS window_start, coalesce(t.model, 'unknown') AS model
    FROM value_turns AS v
    JOIN turns AS t ON t.turn_id = v.turn_id AND t.date = v.date
    WHERE v.scorer_version = $scorer_version AND v.scored
      AND t.date BETWEEN $date_min AND $date_max
      AND t.ts >= CAST($start AS TIMESTAMP) AND t.ts < CAST($end AS TIMESTAMP)
),
member AS (
    SELECT turn_id, date, window_start, model, CAST(NULL AS VARCHAR) AS attribute, CAST(NULL AS VARCHAR) AS value
    FROM turn
    UNION ALL
    SELECT t.turn_id, t.date, t.window_start, CAST(NULL AS VARCHAR) AS model, s.attribute, s.value
    FROM turn AS t
    JOIN (SELECT DISTINCT turn_id, date, attribute, value FROM segments
          WHERE date BETWEEN $date_min AND $date_max AND list_contains($attributes, attribute)
            AND value IS NOT NULL) AS s
      ON s.turn_id = t.turn_id AND s.date = t.date
),
valid AS (
    SELECT turn_id, date, dimension, score
    FROM value_scores
    WHERE scorer_version = $scorer_version
      AND date BETWEEN $date_min AND $date_max
      AND list_contains($dimensions, dimension)
      AND score IS NOT NULL AND NOT isnan(score)
),
per_turn AS (
    SELECT turn_id, date, count(*) = array_length($dimensions) AS complete
    FROM valid
    GROUP BY turn_id, date
),
-- Its own scan (not a filter on `valid`), so that the filter reaches the Parquet reader.
nonzero AS (
    SELECT turn_id, date, dimension, score
    FROM value_scores
    WHERE scorer_version = $scorer_version
      AND date BETWEEN $date_min AND $date_max
      AND list_contains($dimensions, dimension)
      AND score <> 0 AND NOT isnan(score)
),
tagged AS (
    SELECT m.window_start, m.model, m.attribute, m.value, x.dimension, x.score, false AS partial
    FROM member AS m
    JOIN nonzero AS x ON x.turn_id = m.turn_id AND x.date = m.date
    UNION ALL
    SELECT m.window_start, m.model, m.attribute, m.value, x.dimension, x.score, true AS partial
    FROM member AS m
    JOIN per_turn AS p ON p.turn_id = m.turn_id AND p.date = m.date AND NOT p.complete
    JOIN value_scores AS x ON x.turn_id = m.turn_id AND x.date = m.date
    WHERE x.scorer_version = $scorer_version
      AND x.date BETWEEN $date_min AND $date_max
      AND list_contains($dimensions, x.dimension)
      AND x.score IS NOT NULL AND NOT isnan(x.score)
)
SELECT window_start, model, attribute, value, CAST(NULL AS VARCHAR) AS dimension,
       count(*) AS n_complete,
       CAST(NULL AS BIGINT) AS n_partial,
       CAST(NULL AS BIGINT) AS n_nonzero,
       CAST(NULL AS DOUBLE) AS total,
       CAST(NULL AS DOUBLE) AS total_sq,
       CAST(NULL AS BIGINT) AS positive,
       CAST(NULL AS BIGINT) AS negative,
       CAST(NULL AS BIGINT) AS infinite
FROM member AS m
JOIN per_turn AS p ON p.turn_id = m.turn_id AND p.date = m.date AND p.complete
GROUP BY window_start, model, attribute, value
UNION ALL
SELECT window_start, model, attribute, value, dimension,
       CAST(NULL AS BIGINT) AS n_complete,
       count(*) FILTER (WHERE partial) AS n_partial,
       count(*) FILTER (WHERE NOT partial) AS n_nonzero,
       sum(score) FILTER (WHERE NOT partial) AS total,
       sum(score * score) FILTER (WHERE NOT partial) AS total_sq,
       count(*) FILTER (WHERE NOT partial AND score > 0) AS positive,
       count(*) FILTER (WHERE NOT partial AND score < 0) AS negative,
       count(*) FILTER (WHERE NOT partial AND abs(score) = CAST('Infinity' AS DOUBLE)) AS infinite
FROM tagged
GROUP BY window_start, model, attribute, value, dimension
