-- Incidents: the alerts of one rule and metric breaching in the same window and direction (all models, a model,
-- a deployment, each segment) are one incident, notified as one message listing its scopes. `incident_key` =
-- rule | metric | granularity | window_start | direction (up, down, both, or '' for flags); e.g.
-- 'over_refusal_spike|over_refusal_rate|day|2026-11-14T00:00:00Z|up'. An outbox row names the incident it carries
-- and its highest severity, so a scope joining an incident already notified is an update, a higher severity an
-- escalation. Alerts and outbox rows written before this migration get their key here.
ALTER TABLE alerts ADD COLUMN incident_key TEXT;
UPDATE alerts SET incident_key = rule || '|' || metric || '|' || granularity || '|' || window_start || '|' ||
    coalesce(json_extract(evidence, '$.direction'),
             CASE json_extract(evidence, '$.op') WHEN '>' THEN 'up' WHEN '>=' THEN 'up'
                                                 WHEN '<' THEN 'down' WHEN '<=' THEN 'down' END, '');
CREATE INDEX alerts_incident ON alerts (incident_key);
ALTER TABLE notify_outbox ADD COLUMN incident_key TEXT;
ALTER TABLE notify_outbox ADD COLUMN severity TEXT;
UPDATE notify_outbox SET
    incident_key = (SELECT a.incident_key FROM alerts a WHERE a.id = json_extract(notify_outbox.alert_ids, '$[0]')),
    severity = json_extract(payload, '$.alerts[0].severity')
    WHERE kind != 'digest';
CREATE INDEX notify_outbox_incident ON notify_outbox (channel, incident_key);
