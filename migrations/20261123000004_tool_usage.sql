-- The tools processor's output: per session and tool, calls, failed calls (their tool_result
-- has is_error) and distinct files the calls named.
CREATE TABLE tool_usage (
    session_id  text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    tool_name   text NOT NULL,
    calls       bigint NOT NULL,
    errors      bigint NOT NULL,
    files       bigint NOT NULL,
    PRIMARY KEY (session_id, tool_name)
);
