-- The first half of the check behind monitor/partials.py extending a day's cached sums with its new files: the
-- turns with rows in the new files of the other tables (scores, segments, value tables) but none in the new files
-- of the anchor table (turns). Only these can have a row in the old files (a re-score, a segment detected late):
-- a turn's own row is in one turns file only. Engine-internal: it reads two views the module creates over
-- explicit file lists.
-- Parameters: none. Reads views new_ids(turn_id) and new_anchor_ids(turn_id).
-- Output columns: turn_id (distinct).
SELECT DISTINCT n.turn_id
FROM new_ids AS n
ANTI JOIN new_anchor_ids AS a ON a.turn_id = n.turn_id
