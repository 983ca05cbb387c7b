-- Session processors: what each has made of each session, and each processor's runs.
CREATE TABLE processor_state (
    processor_name  text NOT NULL,
    session_id      text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    -- The transcript SHA-256 last processed (sessions.transcript_sha256 then).
    content_hash    text,
    processed_at    timestamptz,
    items           bigint NOT NULL DEFAULT 0,
    -- Failed attempts since the last success; at 5 the session is parked for this processor
    -- until its transcript changes (attempted_hash: the hash those attempts failed on).
    attempts        integer NOT NULL DEFAULT 0,
    attempted_hash  text,
    last_error      text,
    -- When a run last looked at the session: only sessions updated since are looked at again.
    seen_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (processor_name, session_id)
);

CREATE TABLE processor_runs (
    processor_name  text PRIMARY KEY,
    last_run_at     timestamptz,
    next_run_at     timestamptz,
    running         boolean NOT NULL DEFAULT false,
    last_result     jsonb
);

-- The usage processor's output: one row per API response per session. A response Claude Code
-- copied into resumed or forked sessions has one row in each; reports count it once, for the
-- session whose transcript starts first (ties: the smaller session id).
CREATE TABLE usage_responses (
    session_id                   text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    -- `message.id:requestId` (shared across sessions), or `session:…` for a response without a
    -- request id (never matched across sessions).
    response_key                 text NOT NULL,
    model                        text,
    "timestamp"                  timestamptz,
    input_tokens                 bigint NOT NULL,
    output_tokens                bigint NOT NULL,
    cache_creation_input_tokens  bigint NOT NULL,
    cache_read_input_tokens      bigint NOT NULL,
    -- NULL: the model is not in the pricing table.
    cost_usd                     double precision,
    PRIMARY KEY (session_id, response_key)
);
CREATE INDEX usage_responses_key_idx ON usage_responses (response_key);
CREATE INDEX sessions_updated_idx ON sessions (updated_at);

-- Per session, what the usage processor read: when its transcript starts (the first timestamp),
-- which decides the session a shared response is counted for.
CREATE TABLE usage_sessions (
    session_id  text PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
    first_at    timestamptz
);
