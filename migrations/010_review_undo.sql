-- A decision its reviewer took back within the project's undo window: the task ends `undone` (its decision
-- kept for the record, never applied) and the workflow opens the next round for the same reviewer.
ALTER TABLE review_tasks DROP CONSTRAINT review_tasks_status_check;
ALTER TABLE review_tasks ADD CONSTRAINT review_tasks_status_check CHECK (status IN ('open', 'deciding', 'decided', 'expired', 'undone'));
CREATE INDEX review_tasks_decided_by_idx ON review_tasks (decided_by, decided_at DESC) WHERE decided_by IS NOT NULL;
