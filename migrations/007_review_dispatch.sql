-- Which dispatch of a review round's human-task activity recorded the task. A dispatch Temporal marked
-- started but no worker ran leaves no row; the workflow notices and dispatches the round again, and the
-- counter keeps a late-arriving earlier dispatch from overwriting the live activity's task token.
ALTER TABLE review_tasks ADD COLUMN dispatch integer NOT NULL DEFAULT 0 CHECK (dispatch >= 0);
