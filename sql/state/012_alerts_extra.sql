-- Alert series and notification bookkeeping: which series an alert belongs to (rule, metric, granularity,
-- model, deployment, segment) so a later window can resolve it, the size of the reference it was compared with,
-- and the highest severity already notified (re-notify only on escalation).
ALTER TABLE alerts ADD COLUMN series_key TEXT;
ALTER TABLE alerts ADD COLUMN reference_n INTEGER;
ALTER TABLE alerts ADD COLUMN notified_severity TEXT;
CREATE INDEX alerts_series ON alerts (series_key, window_start);
CREATE INDEX notify_outbox_channel ON notify_outbox (channel, kind, created_at);
