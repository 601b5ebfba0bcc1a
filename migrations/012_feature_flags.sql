-- Feature flags for gray releases, served to OpenFeature by src/rollout/pg-flag-provider.ts. Neither
-- flagd nor GO Feature Flag's relay proxy is served by the Go module proxy here, so the flag store is the
-- stack's Postgres: every change is NOTIFYed on `qcflow_flags`, and running providers reload the flag.
CREATE TABLE feature_flags (
  key             text PRIMARY KEY CHECK (key ~ '^[a-z0-9][a-z0-9._/-]{0,127}$'),
  salt            text NOT NULL,
  -- [{"variant": "...", "share": 0.1}, ...]: consecutive ranges of [0, 1), in order.
  arms            jsonb NOT NULL,
  default_variant text NOT NULL,
  enabled         boolean NOT NULL DEFAULT true,
  updated_by      text NOT NULL,
  updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION notify_feature_flag() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('qcflow_flags', COALESCE(NEW.key, OLD.key));
  RETURN NULL;
END $$;

CREATE TRIGGER feature_flags_notify AFTER INSERT OR UPDATE OR DELETE ON feature_flags
  FOR EACH ROW EXECUTE FUNCTION notify_feature_flag();
