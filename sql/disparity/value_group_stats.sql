-- Disparity / value dimensions: per window, model, source kind, attribute, group and value dimension, the
-- histogram of the group's value scores in bins of 0.01 (bin = round(score, 2)), with the exact n, sum and sum of
-- squares of each bin. Summed over bins they give the mean, standard deviation and t interval; the bins give the
-- Mann-Whitney test against the reference (a rank test needs the order of the scores, not every raw value).
-- Each turn counts with its current value scores: those of its latest value_turns row (latest scored_at), and
-- only if that row is scored (unscored replies have no value_scores rows and never pull a mean down). The
-- `refusal` dimension (the classifier's probability) is left out: refusal_disparity already tests it.
-- model = the full model identifier (name@version).
-- Parameters: $granularity ('day' | 'hour'), $windows (TIMESTAMP[] window starts), $date_min, $date_max
-- (VARCHAR 'YYYY-MM-DD' partition pruning bounds covering the windows), $attributes (VARCHAR[]).
-- Output columns: window_start, model, source_kind, attribute, value, dimension, bin, family, n, total,
-- total_sq, nonzero (replies scoring above 0).
-- How: a window of 50k turns has ~1M scores and ~4M (score, segment) pairs, so the pairs are grouped on small integer
-- codes (turn tn, window/model/source mk, segment value sv) and the dimension, and the names joined back to the
-- grouped bins: 1.7x less CPU than grouping the named pairs.
WITH cur AS (
    SELECT turn_id, scorer_version FROM (
        SELECT turn_id, scorer_version, scored,
               row_number() OVER (PARTITION BY turn_id ORDER BY scored_at DESC, scorer_version DESC) AS rn
        FROM value_turns
        WHERE date BETWEEN $date_min AND $date_max
    ) WHERE rn = 1 AND scored
),
tk AS (  -- the turns of the windows, numbered
    SELECT turn_id, window_start, model, source_kind,
           row_number() OVER (ORDER BY turn_id, window_start, model, source_kind) AS tn,
           dense_rank() OVER (ORDER BY window_start, model, source_kind) AS mk
    FROM (SELECT turn_id, date_trunc($granularity, ts) AS window_start, model, source_kind
          FROM turn_sources
          WHERE date BETWEEN $date_min AND $date_max
            AND list_contains($windows, date_trunc($granularity, ts)))
),
mkk AS (  -- code of each (window, model, source kind)
    SELECT DISTINCT mk, window_start, model, source_kind FROM tk
),
scores AS (  -- the current value scores of the windows' turns, but the refusal probability
    SELECT t.tn, t.mk, v.dimension, v.family, v.score
    FROM tk AS t
    JOIN cur AS c USING (turn_id)
    JOIN value_scores AS v ON v.turn_id = c.turn_id AND v.scorer_version = c.scorer_version
    WHERE v.date BETWEEN $date_min AND $date_max
      AND v.dimension <> 'refusal'
),
dims AS (  -- the family of each dimension
    SELECT dimension, any_value(family) AS family FROM scores GROUP BY dimension
),
seg AS (
    SELECT DISTINCT t.tn, s.attribute, s.value
    FROM segments AS s JOIN tk AS t ON t.turn_id = s.turn_id
    WHERE s.date BETWEEN $date_min AND $date_max
      AND list_contains($attributes, s.attribute)
      AND s.value IS NOT NULL
),
svk AS (  -- code of each (attribute, value)
    SELECT attribute, value, row_number() OVER (ORDER BY attribute, value) AS sv
    FROM (SELECT DISTINCT attribute, value FROM seg)
),
segk AS (  -- the segment values of each turn, coded
    SELECT g.tn, k.sv FROM seg AS g JOIN svk AS k ON k.attribute = g.attribute AND k.value = g.value
),
cells AS (  -- the bins, on codes
    SELECT b.mk, k.sv, b.dimension, round(b.score, 2) AS bin,
           count(*) AS n,
           sum(b.score) AS total,
           sum(b.score * b.score) AS total_sq,
           count(*) FILTER (WHERE b.score > 0) AS nonzero
    FROM scores AS b
    JOIN segk AS k ON k.tn = b.tn
    GROUP BY b.mk, k.sv, b.dimension, round(b.score, 2)
)
SELECT m.window_start, m.model, m.source_kind, k.attribute, k.value, c.dimension, c.bin, d.family,
       c.n, c.total, c.total_sq, c.nonzero
FROM cells AS c
JOIN mkk AS m USING (mk)
JOIN svk AS k USING (sv)
JOIN dims AS d USING (dimension)
ORDER BY m.window_start, m.model, m.source_kind, k.attribute, k.value, c.dimension, c.bin;
