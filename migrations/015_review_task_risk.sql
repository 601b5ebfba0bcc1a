-- The estimated probability a task's labels are wrong, kept on the task when it opens. The queue orders by
-- it; reading it from qc_results for every open task took 0.26–0.46 s per page or claim at 100k open tasks
-- (npm run bench -- queue).
ALTER TABLE review_tasks ADD COLUMN risk double precision;
UPDATE review_tasks t SET risk = (
  SELECT (q.details->'risk'->>'pWrong')::float8 FROM qc_results q
  WHERE q.sample_id = t.sample_id AND q.layer IN (2, 5) AND q.details->'risk'->>'pWrong' IS NOT NULL
  ORDER BY q.layer DESC LIMIT 1);
