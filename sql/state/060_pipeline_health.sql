-- Indexes for the pipeline-health checks (monitor/alerts/pipeline.py), which run every minute: a job's latest
-- successful run and its failures since (job_failures rule: max(id) WHERE job=? AND status='ok', then the failed
-- runs after it) and the files ingested in the last hour (quarantine_share rule: WHERE finished_at > ?). Without
-- them each check reads every run and every file ever recorded: a year of job runs is about two million rows.
CREATE INDEX IF NOT EXISTS job_runs_job_status ON job_runs (job, status, id);
CREATE INDEX IF NOT EXISTS ingested_files_finished ON ingested_files (finished_at);
