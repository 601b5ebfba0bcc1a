-- Layer 4 in data time: a bucket's place in its subject's windows is when its samples were labelled
-- (the newest annotation submittedAt of that subject in the batch), not when the batch happened to finish,
-- so batches processed out of order land in the right window and an older batch cannot clear a live alert.
ALTER TABLE quality_buckets ADD COLUMN data_time timestamptz;
UPDATE quality_buckets SET data_time = created_at;
ALTER TABLE quality_buckets ALTER COLUMN data_time SET NOT NULL;
CREATE INDEX quality_buckets_data_time_idx ON quality_buckets (project_id, subject, data_time DESC, seq DESC);
