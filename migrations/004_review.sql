-- Human review: who reviews which project, the review tasks (one per sample and round), and the
-- round-robin cursor. Decisions, claims and escalations are also written to audit_log.

CREATE TABLE project_members (
  project_id    text NOT NULL REFERENCES projects(id),
  user_id       text NOT NULL CHECK (user_id ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$'),
  -- Leads receive tasks once escalation has run through the reviewers.
  role          text NOT NULL CHECK (role IN ('reviewer', 'lead')),
  added_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (project_id, user_id)
);

CREATE TABLE review_cursors (
  project_id    text NOT NULL REFERENCES projects(id),
  audience      text NOT NULL,
  last_user     text NOT NULL,
  PRIMARY KEY (project_id, audience)
);

CREATE TABLE review_tasks (
  id               bigserial PRIMARY KEY,
  sample_id        text NOT NULL REFERENCES samples(id),
  project_id       text NOT NULL REFERENCES projects(id),
  round            integer NOT NULL CHECK (round >= 0),
  reason           text NOT NULL,
  audience         text NOT NULL CHECK (audience IN ('reviewers', 'leads')),
  -- Temporal's token for completing the waiting activity; read only by the decision path, never returned.
  task_token       bytea NOT NULL,
  assignee         text,
  -- Set when the assignee claimed the task from the queue; past it, anyone in the project may claim it.
  claim_expires_at timestamptz,
  status           text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'deciding', 'decided', 'expired')),
  decision         text CHECK (decision IN ('approve', 'reject', 'correct', 'resample')),
  decided_by       text,
  decided_at       timestamptz,
  labels           jsonb,
  comment          text,
  -- Why a decided task did not take effect (a correction that no longer passes layer 1 or the ontology).
  outcome          jsonb,
  created_at       timestamptz NOT NULL DEFAULT now(),
  due_at           timestamptz NOT NULL,
  UNIQUE (sample_id, round)
);
CREATE INDEX review_tasks_queue_idx ON review_tasks (project_id, status, created_at);
CREATE INDEX review_tasks_assignee_idx ON review_tasks (assignee, status);
