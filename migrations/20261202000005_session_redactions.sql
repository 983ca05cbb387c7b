-- Secrets taken out of each session's messages, by kind ({"aws_access_key": 2, …}): written
-- with the rows when the session is parsed, shown in its detail and summed by the monitor.
ALTER TABLE sessions ADD COLUMN redactions jsonb NOT NULL DEFAULT '{}';
CREATE INDEX sessions_redacted_idx ON sessions (workspace_id) WHERE redactions <> '{}';
