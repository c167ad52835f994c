-- Disparity / detector fairness: per attribute and group, the refusal classifier's confusion counts against
-- reviewer labels (binary: refused = full or partial refusal). Each turn counts once per attribute, with its latest
-- label and its latest classifier score. Optionally only turns whose event time is in [$start, $end). Every
-- attribute in one pass over the range's scores, segments and turns (the job's rows need them all).
-- Only labels that are a random sample measure the classifier: a turn the review queue picked for an uncertain score
-- or an alert, or (not queued) one a label says was picked for a reason (labels.sample = 'targeted': a search, a
-- targeted import), is left out, as sql/jobs/refusal_labelled_turns.sql leaves it out of the error rates.
-- Parameters: $attributes (VARCHAR[]), $start, $end (TIMESTAMP or NULL = unbounded), $date_min, $date_max (VARCHAR
-- 'YYYY-MM-DD': partition pruning bounds covering [$start, $end)).
-- Output columns: attribute, value, n, tp, fp, fn, tn.
WITH targeted AS (
    SELECT turn_id FROM review_queue WHERE reason <> 'stratified'
    UNION
    SELECT turn_id FROM labels WHERE sample = 'targeted' AND turn_id NOT IN (SELECT turn_id FROM review_queue)
),
lab AS (
    SELECT turn_id, refusal_label FROM (
        SELECT turn_id, refusal_label,
               row_number() OVER (PARTITION BY turn_id ORDER BY "at" DESC, id DESC) AS rn
        FROM labels
        WHERE refusal_label IS NOT NULL AND turn_id NOT IN (SELECT turn_id FROM targeted)
    ) WHERE rn = 1
),
-- Labels are few: the latest score (as view latest_scores ranks them) and the segments of labelled turns only, so
-- the query does not rank every score of the range.
sc AS (
    SELECT turn_id, date, refusal FROM (
        SELECT turn_id, date, refusal,
               row_number() OVER (PARTITION BY date, turn_id ORDER BY scored_at DESC) AS rn
        FROM scores
        WHERE date BETWEEN $date_min AND $date_max
          AND turn_id IN (SELECT turn_id FROM lab)
    ) WHERE rn = 1
),
seg AS (
    SELECT DISTINCT turn_id, attribute, value FROM segments
    WHERE list_contains($attributes, attribute) AND value IS NOT NULL AND date BETWEEN $date_min AND $date_max
      AND turn_id IN (SELECT turn_id FROM lab)
),
j AS (
    SELECT g.attribute, g.value,
           l.refusal_label IN ('full_refusal', 'partial_refusal') AS truth,
           s.refusal IN ('full_refusal', 'partial_refusal') AS pred
    FROM lab l
    JOIN sc s USING (turn_id)
    JOIN seg g USING (turn_id)
    JOIN turns t USING (turn_id)
    WHERE s.refusal IS NOT NULL
      AND s.date BETWEEN $date_min AND $date_max
      AND t.date BETWEEN $date_min AND $date_max
      AND (CAST($start AS TIMESTAMP) IS NULL OR t.ts >= CAST($start AS TIMESTAMP))
      AND (CAST($end AS TIMESTAMP) IS NULL OR t.ts < CAST($end AS TIMESTAMP))
)
SELECT attribute,
       value,
       count(*) AS n,
       count(*) FILTER (WHERE truth AND pred) AS tp,
       count(*) FILTER (WHERE NOT truth AND pred) AS fp,
       count(*) FILTER (WHERE truth AND NOT pred) AS fn,
       count(*) FILTER (WHERE NOT truth AND NOT pred) AS tn
FROM j
GROUP BY attribute, value
ORDER BY attribute, value;
