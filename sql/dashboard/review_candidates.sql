-- Review-queue candidates: scored turns whose classifier decision is least certain, plus a random sample per
-- segment group (for stratified review). `priority` is 1 - 2*|score - 0.5| for the uncertain kinds (1 = a coin
-- flip) and a random number for the stratified kind.
-- Parameters: $band (how far from 0.5 counts as uncertain, e.g. 0.15), $attribute (segment attribute to stratify
--   by; '' = none), $per_kind (maximum rows returned per kind and group).
-- Columns: kind (uncertain_refusal | uncertain_harm | stratified), turn_id, priority, group_key.
WITH ls AS (
    -- latest score per turn without a window over the whole table (arg_max is a plain hash aggregate)
    SELECT turn_id, arg_max(refusal_score, scored_at) AS refusal_score,
           arg_max(prompt_harm_score, scored_at) AS prompt_harm_score
    FROM scores GROUP BY turn_id
), grp AS (
    SELECT turn_id, any_value(value) AS group_key FROM segments WHERE attribute = $attribute GROUP BY turn_id
), unc_refusal AS (
    SELECT 'uncertain_refusal' AS kind, turn_id, 1 - 2 * abs(refusal_score - 0.5) AS priority
    FROM ls WHERE abs(refusal_score - 0.5) <= $band
    ORDER BY priority DESC, turn_id LIMIT $per_kind
), unc_harm AS (
    SELECT 'uncertain_harm' AS kind, turn_id, 1 - 2 * abs(prompt_harm_score - 0.5) AS priority
    FROM ls WHERE abs(prompt_harm_score - 0.5) <= $band
    ORDER BY priority DESC, turn_id LIMIT $per_kind
), strat AS (
    SELECT 'stratified' AS kind, turn_id, hash(turn_id) % 1000000 / 1000000.0 AS priority, group_key,
           row_number() OVER (PARTITION BY group_key ORDER BY hash(turn_id)) AS rn
    FROM grp
)
SELECT u.kind, u.turn_id, u.priority, g.group_key FROM unc_refusal u LEFT JOIN grp g USING (turn_id)
UNION ALL
SELECT u.kind, u.turn_id, u.priority, g.group_key FROM unc_harm u LEFT JOIN grp g USING (turn_id)
UNION ALL
SELECT kind, turn_id, priority, group_key FROM strat WHERE rn <= $per_kind;
