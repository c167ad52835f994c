-- How long each job run took, in seconds with sub-second precision (time.perf_counter). started_at and
-- finished_at are ISO text to the second, so their difference says 0 or 1 for most runs (a 0.4 s run from
-- 12:00:00.9 to 12:00:01.3 reads as 1 s). Runs recorded before this migration keep NULL: the timestamps are
-- all they have.
ALTER TABLE job_runs ADD COLUMN duration_s REAL;
