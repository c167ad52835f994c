-- The check behind monitor/partials.py extending a day's cached sums with its new files: how many turns with rows
-- in the new files also have a row in the old files of the anchor table (turns), i.e. turns whose contribution
-- changed (re-scored, a segment detected late). Engine-internal: it reads two views the module creates over
-- explicit file lists.
-- Parameters: none. Reads views old_ids(turn_id) and new_ids(turn_id).
-- Output columns: overlap (one row).
SELECT count(*) AS overlap
FROM (SELECT DISTINCT turn_id FROM new_ids) AS n
SEMI JOIN old_ids AS o ON o.turn_id = n.turn_id
