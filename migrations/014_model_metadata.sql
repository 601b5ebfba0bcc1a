-- Model version metadata, and the JSON Schema a tenant requires of it. A metadata change is a model event,
-- kept with who and why like stage changes and alias moves.
ALTER TABLE model_versions ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}'::jsonb;

CREATE TABLE tenant_metadata_schemas (
  tenant      text PRIMARY KEY,
  schema      jsonb NOT NULL,
  updated_by  text NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE model_events DROP CONSTRAINT model_events_kind_check;
ALTER TABLE model_events ADD CONSTRAINT model_events_kind_check CHECK (kind IN ('stage', 'alias', 'metadata'));
