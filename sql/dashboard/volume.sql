-- Daily volume and user feedback per model: turns, thumbs up, thumbs down, for event dates in [$start_date, $end_date].
-- Filtering on the `date` partition column lets DuckDB skip whole files outside the window.
-- Parameters: $start_date, $end_date (text YYYY-MM-DD, inclusive).
-- Columns: day (DATE), model, turns, thumbs_up, thumbs_down.
SELECT CAST(date AS DATE) AS day, coalesce(model, '(unknown)') AS model, count(*) AS turns,
       count(*) FILTER (WHERE feedback = 'up') AS thumbs_up,
       count(*) FILTER (WHERE feedback = 'down') AS thumbs_down
FROM turns
WHERE date >= $start_date AND date <= $end_date
GROUP BY ALL
ORDER BY day, model;
