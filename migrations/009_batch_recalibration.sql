-- The recalibration of layer 5's risk against reviewers a batch is judged by, fitted once when the batch
-- is first judged: reviews decided while it runs (or between retries) apply from the next batch.
ALTER TABLE batches ADD COLUMN recalibration jsonb;
