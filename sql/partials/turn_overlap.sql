-- The second half of the check behind monitor/partials.py extending a day's cached sums with its new files: how
-- many of the candidate turns (sql/partials/unanchored_turns.sql) have a row in the old files of the anchor table
-- (turns), i.e. turns whose contribution changed (re-scored, a segment detected late). Engine-internal: it reads a
-- view the module creates over an explicit file list.
-- Parameters: $ids VARCHAR[]: the candidate turn ids. Reads view old_ids(turn_id).
-- Output columns: overlap (one row).
SELECT count(*) AS overlap
FROM (SELECT DISTINCT unnest($ids) AS turn_id) AS n
SEMI JOIN old_ids AS o ON o.turn_id = n.turn_id
