-- Layers 2 and 5: annotator reliability, per-batch agreement, fusion details, resample requests, plugin errors.

-- Why a layer decided what it did (consensus, tallies, fusion inputs and weights), beside its findings.
ALTER TABLE qc_results ADD COLUMN details jsonb NOT NULL DEFAULT '{}'::jsonb;

-- Fleiss' kappa, Krippendorff's alpha and per-annotator agreement of one batch.
ALTER TABLE batches ADD COLUMN agreement jsonb;

-- Dawid–Skene soft counts accumulated over a project's history: the class prior ...
CREATE TABLE reliability_models (
  project_id    text PRIMARY KEY REFERENCES projects(id),
  classes       jsonb NOT NULL,
  class_counts  jsonb NOT NULL,
  updated_at    timestamptz NOT NULL DEFAULT now()
);

-- ... and each annotator's confusion counts (true class × given class, in reliability_models.classes order).
CREATE TABLE annotator_reliability (
  project_id    text NOT NULL REFERENCES projects(id),
  annotator     text NOT NULL,
  confusion     jsonb NOT NULL,
  accuracy      double precision NOT NULL,
  updated_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (project_id, annotator)
);

-- The model each batch was judged with; its presence also marks the batch's counts as already added.
CREATE TABLE reliability_fits (
  project_id    text NOT NULL,
  batch_id      text NOT NULL,
  fit           jsonb NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (project_id, batch_id)
);

-- How often each annotator agreed with the consensus, per batch (layer 4 windows over these).
CREATE TABLE annotator_agreement (
  project_id    text NOT NULL,
  batch_id      text NOT NULL,
  annotator     text NOT NULL,
  compared      integer NOT NULL,
  agreed        integer NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (project_id, batch_id, annotator)
);
CREATE INDEX annotator_agreement_annotator_idx ON annotator_agreement (project_id, annotator, created_at);

CREATE TABLE resample_requests (
  sample_id     text PRIMARY KEY REFERENCES samples(id),
  project_id    text NOT NULL,
  batch_id      text NOT NULL,
  external_id   text NOT NULL,
  reasons       jsonb NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  notified_at   timestamptz
);
CREATE INDEX resample_requests_batch_idx ON resample_requests (project_id, batch_id, notified_at);

-- Problems of a whole batch rather than one sample: a plugin that threw, a webhook that would not take a notice.
CREATE TABLE batch_findings (
  project_id    text NOT NULL,
  batch_id      text NOT NULL,
  source        text NOT NULL,
  rule          text NOT NULL,
  message       text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (project_id, batch_id, source, rule)
);
