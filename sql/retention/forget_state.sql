-- SQLite state rows about deleted turns and quarantined records: reviewer labels, review-queue items and the
-- retry status of quarantined records. Run inside the caller's write transaction, one statement at a time (the
-- row count of each is reported per table).
-- Parameters: none; the ids are in temp tables forget_turns(turn_id) and forget_quarantine(quarantine_id).
-- Output columns: none (DELETE statements, in the order labels, review_queue, quarantine_status).
DELETE FROM labels WHERE turn_id IN (SELECT turn_id FROM temp.forget_turns);
DELETE FROM review_queue WHERE turn_id IN (SELECT turn_id FROM temp.forget_turns);
DELETE FROM quarantine_status WHERE quarantine_id IN (SELECT quarantine_id FROM temp.forget_quarantine);
