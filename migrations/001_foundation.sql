-- Foundation schema: projects, samples, annotations, layer results, batches, releases, audit.
-- Later layers add their own migrations; this file is never edited once released.

CREATE TABLE projects (
  id            text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
  json_schema   jsonb NOT NULL DEFAULT '{}'::jsonb,
  regex_rules   jsonb NOT NULL DEFAULT '[]'::jsonb,
  ontology      jsonb NOT NULL DEFAULT '{}'::jsonb,
  qc_policy     jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE batches (
  project_id    text NOT NULL REFERENCES projects(id),
  id            text NOT NULL,
  staging_key   text NOT NULL,
  status        text NOT NULL DEFAULT 'staging' CHECK (status IN ('staging', 'qc', 'done')),
  lines_total   integer,
  counts        jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at    timestamptz NOT NULL DEFAULT now(),
  finished_at   timestamptz,
  PRIMARY KEY (project_id, id)
);

CREATE TABLE samples (
  id            text PRIMARY KEY,
  project_id    text NOT NULL REFERENCES projects(id),
  external_id   text NOT NULL,
  revision      integer NOT NULL,
  content_hash  text NOT NULL,
  is_latest     boolean NOT NULL DEFAULT true,
  payload       jsonb NOT NULL,
  media         jsonb NOT NULL DEFAULT '[]'::jsonb,
  batch_id      text NOT NULL,
  line_no       integer,
  status        text NOT NULL DEFAULT 'received'
                CHECK (status IN ('received', 'qc', 'accepted', 'review', 'resample', 'rejected', 'released')),
  release_id    bigint,
  decided_at    timestamptz,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  UNIQUE (project_id, external_id, content_hash),
  UNIQUE (project_id, external_id, revision)
);
CREATE INDEX samples_batch_idx ON samples (project_id, batch_id, status);
CREATE INDEX samples_releasable_idx ON samples (project_id, status) WHERE release_id IS NULL;
CREATE INDEX samples_release_idx ON samples (release_id, id);

CREATE TABLE annotations (
  sample_id     text NOT NULL REFERENCES samples(id),
  ordinal       integer NOT NULL,
  annotator     text NOT NULL,
  labels        jsonb NOT NULL,
  submitted_at  timestamptz,
  duration_ms   integer,
  PRIMARY KEY (sample_id, ordinal)
);
CREATE INDEX annotations_annotator_idx ON annotations (annotator);

CREATE TABLE qc_results (
  sample_id     text NOT NULL REFERENCES samples(id),
  layer         smallint NOT NULL CHECK (layer BETWEEN 1 AND 5),
  passed        boolean NOT NULL,
  score         double precision,
  findings      jsonb NOT NULL DEFAULT '[]'::jsonb,
  model_version text,
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (sample_id, layer)
);

-- Lines of a staged batch that never became a sample: unparseable JSON or an invalid envelope.
CREATE TABLE ingest_rejections (
  project_id    text NOT NULL,
  batch_id      text NOT NULL,
  line_no       integer NOT NULL,
  external_id   text,
  excerpt       text NOT NULL,
  findings      jsonb NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (project_id, batch_id, line_no)
);

CREATE TABLE releases (
  id            bigserial PRIMARY KEY,
  project_id    text NOT NULL REFERENCES projects(id),
  version       text NOT NULL CHECK (version ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
  status        text NOT NULL DEFAULT 'building' CHECK (status IN ('building', 'published')),
  sample_count  integer NOT NULL DEFAULT 0,
  manifest_key  text,
  checksums     jsonb NOT NULL DEFAULT '{}'::jsonb,
  qc_summary    jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at    timestamptz NOT NULL DEFAULT now(),
  published_at  timestamptz,
  UNIQUE (project_id, version)
);
ALTER TABLE samples ADD CONSTRAINT samples_release_fk FOREIGN KEY (release_id) REFERENCES releases(id);

CREATE TABLE audit_log (
  id            bigserial PRIMARY KEY,
  at            timestamptz NOT NULL DEFAULT now(),
  actor         text NOT NULL,
  action        text NOT NULL,
  project_id    text,
  subject       text,
  details       jsonb NOT NULL DEFAULT '{}'::jsonb
);
