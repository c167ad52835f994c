-- The SQL page's schema browser: every table and view a query can name (lake tables, views, state tables) with
-- its columns, read from the dashboard's cached connection, which has the same tables as the guarded one
-- (monitor.db.connect builds both), instead of building a second connection over every lake file.
-- Parameters: none.
-- Columns: table_name, column_name, data_type.
SELECT table_name, column_name, data_type
FROM information_schema.columns
WHERE table_schema = 'main'
ORDER BY table_name, ordinal_position;
