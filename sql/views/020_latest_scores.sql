-- View `latest_scores`: the most recent classifier output per turn (a re-score with a new classifier version
-- appends rows to `scores`; older versions stay queryable there).
-- Parameters: none. Columns: every column of scores.
CREATE OR REPLACE VIEW latest_scores AS
SELECT * EXCLUDE (rn) FROM (
    SELECT *, row_number() OVER (PARTITION BY date, turn_id ORDER BY scored_at DESC) AS rn FROM scores
) WHERE rn = 1;
