-- How the labelled turn was chosen, when the review queue did not choose it: 'random' (a random sample of traffic)
-- or 'targeted' (picked for a reason: uncertain scores, an incident, a keyword search; every label made from the
-- dashboard's search). NULL for labels made from the review queue, whose reason describes the turn. Labels on
-- targeted turns are kept out of the classifiers' error rates, as the queue's targeted reasons are
-- (monitor/jobs/refusal_metrics.py, TARGETED_REASONS).
ALTER TABLE labels ADD COLUMN sample TEXT;
