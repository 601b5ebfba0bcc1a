-- Quantization: a model version keeps the golden inputs it was validated on, so a later regression check
-- (or a quantized child) can re-run them; metrics (and parent_id, precision) record a child's lineage.
ALTER TABLE model_versions ADD COLUMN golden_key text;
ALTER TABLE model_versions ADD COLUMN golden_sha256 text;
