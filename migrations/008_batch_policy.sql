-- The QC policy a batch is judged by, resolved once when the batch is staged: an edit to the project's
-- policy while a batch runs applies from the next batch, so no batch sees two sets of thresholds.
ALTER TABLE batches ADD COLUMN policy jsonb;
