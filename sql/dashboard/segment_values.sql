-- Segment attributes and their values with turn counts, for the filter pickers.
-- Parameters: none.
-- Columns: attribute, value, turns.
SELECT attribute, value, count(*) AS turns FROM segments GROUP BY ALL ORDER BY attribute, turns DESC;
