-- How an imported label's turn was chosen: 'random' (a random sample of traffic) or 'targeted' (picked for a
-- reason: uncertain scores, an incident, a keyword search). NULL for labels made in the dashboard, whose turns the
-- review queue's reason describes. Labels on targeted turns are kept out of the classifiers' error rates, as the
-- queue's targeted reasons are (monitor/jobs/refusal_metrics.py, TARGETED_REASONS).
ALTER TABLE labels ADD COLUMN sample TEXT;
