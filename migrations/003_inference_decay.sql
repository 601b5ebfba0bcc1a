-- Layer 3: registered model versions. A row is immutable once written: a new file is a new version.
CREATE TABLE model_versions (
  id               text PRIMARY KEY,             -- '{tenant}/{name}/{version}'
  tenant           text NOT NULL,
  name             text NOT NULL,
  version          text NOT NULL,
  sha256           text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  object_key       text NOT NULL,
  bytes            bigint NOT NULL,
  manifest         jsonb NOT NULL,               -- labels, output, input adapter
  tokenizer_key    text,
  tokenizer_sha256 text,
  precision        text NOT NULL DEFAULT 'fp32',
  parent_id        text REFERENCES model_versions(id),
  metrics          jsonb NOT NULL DEFAULT '{}',
  status           text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),
  created_at       timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant, name, version)
);
CREATE INDEX model_versions_latest_idx ON model_versions (tenant, name, created_at DESC);

-- Layer 4: one bucket per (project, subject, batch), subject '*' being the project's stream and any other
-- value an annotator. Windows are built from the newest buckets only, so no update rescans history.
CREATE TABLE quality_buckets (
  project_id   text NOT NULL REFERENCES projects(id),
  subject      text NOT NULL,
  batch_id     text NOT NULL,
  seq          bigserial,
  created_at   timestamptz NOT NULL DEFAULT now(),
  n            integer NOT NULL,
  l1_failed    integer NOT NULL,
  l2_compared  double precision NOT NULL,  -- annotators: labels compared; stream: samples with a layer-2 score
  l2_agreed    double precision NOT NULL,  -- annotators: labels agreeing; stream: summed layer-2 agreement
  l3_n         integer NOT NULL,
  l3_sum       double precision NOT NULL,
  l3_scores    real[] NOT NULL,                 -- bounded, deterministic sample of the batch's layer-3 scores (for KS)
  time_hist    integer[] NOT NULL,              -- annotation times over fixed log-spaced bins
  PRIMARY KEY (project_id, subject, batch_id)
);
CREATE INDEX quality_buckets_newest_idx ON quality_buckets (project_id, subject, seq DESC);

-- The latest short/reference windows, trends, KS test and stability per subject (what `qcflow status` shows).
CREATE TABLE quality_windows (
  project_id   text NOT NULL REFERENCES projects(id),
  subject      text NOT NULL,
  batch_id     text NOT NULL,
  summary      jsonb NOT NULL,
  updated_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (project_id, subject)
);

CREATE TABLE decay_alerts (
  id               bigserial PRIMARY KEY,
  project_id       text NOT NULL REFERENCES projects(id),
  subject          text NOT NULL,
  metric           text NOT NULL,
  short_value      double precision NOT NULL,
  reference_value  double precision NOT NULL,
  delta            double precision NOT NULL,
  threshold        double precision NOT NULL,
  slope            double precision,
  opened_batch     text NOT NULL,
  last_batch       text NOT NULL,
  opened_at        timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  cleared_at       timestamptz
);
CREATE UNIQUE INDEX decay_alerts_open_idx ON decay_alerts (project_id, subject, metric) WHERE cleared_at IS NULL;
