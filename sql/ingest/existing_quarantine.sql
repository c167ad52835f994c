-- Which quarantine rows of an ingest batch are already in the lake (the same raw record of the same file and
-- line, quarantined by an earlier run), so a re-run does not quarantine it twice.
-- Parameters: $files (list of quarantine Parquet files; the batch is registered as `batch` with columns i,
-- quarantine_id).
-- Output columns: i (row number of each batch row already quarantined).
SELECT i FROM batch WHERE quarantine_id IN (SELECT quarantine_id FROM read_parquet($files));
