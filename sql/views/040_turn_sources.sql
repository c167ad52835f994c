-- View `turn_sources`: each turn's model identifier and source kind, the one definition every disparity query
-- groups by. source_kind = 'probe' for counterfactual probe turns (source 'probe', or a `probe_template` user
-- attribute), else 'production'; model = the full identifier (name@version), 'unknown' when missing.
-- Parameters: none. Columns: turn_id, date, ts, model, source_kind.
CREATE OR REPLACE VIEW turn_sources AS
SELECT turn_id, date, ts,
       coalesce(model, 'unknown') AS model,
       CASE WHEN source = 'probe' OR json_extract_string(user_attrs, '$.probe_template') IS NOT NULL
            THEN 'probe' ELSE 'production' END AS source_kind
FROM turns;
