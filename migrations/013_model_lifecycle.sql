-- Model registry lifecycle: each version's stage, aliases that name one version of a model and move
-- atomically, and an append-only event log of every stage change and alias move with who and why.
ALTER TABLE model_versions ADD COLUMN stage text NOT NULL DEFAULT 'registered'
  CHECK (stage IN ('registered', 'validated', 'canary', 'production', 'archived'));

CREATE TABLE model_aliases (
  tenant      text NOT NULL,
  name        text NOT NULL,
  alias       text NOT NULL CHECK (alias ~ '^[a-z][a-z0-9_-]{0,62}$'),
  version_id  text NOT NULL REFERENCES model_versions(id),
  updated_by  text NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, name, alias)
);

CREATE TABLE model_events (
  id          bigserial PRIMARY KEY,
  version_id  text NOT NULL REFERENCES model_versions(id),
  kind        text NOT NULL CHECK (kind IN ('stage', 'alias')),
  from_value  text,
  to_value    text NOT NULL,
  actor       text NOT NULL,
  reason      text NOT NULL,
  at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX model_events_version_idx ON model_events (version_id, id);

-- Append-only: the history of a model is evidence, so it cannot be edited or deleted.
CREATE FUNCTION model_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'model_events is append-only';
END $$;
CREATE TRIGGER model_events_no_change BEFORE UPDATE OR DELETE ON model_events
  FOR EACH ROW EXECUTE FUNCTION model_events_append_only();
