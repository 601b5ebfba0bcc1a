-- A calibration set kept with a model version, apart from its golden inputs: what the quantization workflow
-- fits to (int8-static ranges, int4 GPTQ), so the golden set that judges a candidate is not also what made it.
ALTER TABLE model_versions ADD COLUMN calibration_key text;
