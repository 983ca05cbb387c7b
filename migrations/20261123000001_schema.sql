-- Sessions, their lifecycle and stats, and every message and content block parsed from their
-- transcripts; workspaces, devices and the event log that drive them.

CREATE TABLE workspaces (
    id          text PRIMARY KEY,
    name        text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE devices (
    id            text PRIMARY KEY,
    workspace_id  text NOT NULL REFERENCES workspaces (id),
    hostname      text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sessions (
    id                  text PRIMARY KEY,
    workspace_id        text NOT NULL REFERENCES workspaces (id),
    device_id           text REFERENCES devices (id),
    lifecycle           text NOT NULL DEFAULT 'detected'
        CHECK (lifecycle IN ('detected', 'capturing', 'ended', 'parsed', 'summarized', 'archived', 'failed')),
    started_at          timestamptz,
    ended_at            timestamptz,
    end_reason          text,
    duration_ms         bigint,
    source              text,
    model               text,
    git_branch          text,
    cwd                 text,
    cc_version          text,
    transcript_key      text,
    transcript_size     bigint,
    transcript_sha256   text,
    parse_status        text NOT NULL DEFAULT 'pending'
        CHECK (parse_status IN ('pending', 'parsing', 'completed', 'failed')),
    parse_error         text,
    -- When a recovery sweep last queued the session, so that other sweeps leave it alone.
    enqueued_at         timestamptz,
    total_messages      integer NOT NULL DEFAULT 0,
    user_messages       integer NOT NULL DEFAULT 0,
    assistant_messages  integer NOT NULL DEFAULT 0,
    tool_use_count      integer NOT NULL DEFAULT 0,
    thinking_blocks     integer NOT NULL DEFAULT 0,
    subagent_count      integer NOT NULL DEFAULT 0,
    tokens_in           bigint NOT NULL DEFAULT 0,
    tokens_out          bigint NOT NULL DEFAULT 0,
    cache_read_tokens   bigint NOT NULL DEFAULT 0,
    cache_write_tokens  bigint NOT NULL DEFAULT 0,
    cost_estimate_usd   double precision NOT NULL DEFAULT 0,
    initial_prompt      text,
    summary             text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- Counting and filtering by lifecycle (monitor, API filters).
CREATE INDEX sessions_lifecycle_idx ON sessions (lifecycle, updated_at);
-- Recovery sweep: ended sessions with a transcript whose pipeline never ran or died.
CREATE INDEX sessions_recovery_idx ON sessions (updated_at)
    WHERE lifecycle = 'ended' AND transcript_key IS NOT NULL;
-- Summary retry sweep: parsed sessions still without a summary.
CREATE INDEX sessions_summary_retry_idx ON sessions (updated_at)
    WHERE lifecycle = 'parsed' AND summary IS NULL;
-- Listing, newest first, with keyset pagination on (created_at, id).
CREATE INDEX sessions_listing_idx ON sessions (created_at DESC, id DESC);
CREATE INDEX sessions_workspace_listing_idx ON sessions (workspace_id, created_at DESC, id DESC);

CREATE TABLE transcript_messages (
    session_id                   text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    ordinal                      integer NOT NULL,
    line_number                  integer NOT NULL,
    message_type                 text NOT NULL,
    role                         text,
    model                        text,
    input_tokens                 bigint,
    output_tokens                bigint,
    cache_creation_input_tokens  bigint,
    cache_read_input_tokens      bigint,
    "timestamp"                  timestamptz,
    is_sidechain                 boolean NOT NULL DEFAULT false,
    has_text                     boolean NOT NULL DEFAULT false,
    has_thinking                 boolean NOT NULL DEFAULT false,
    has_tool_use                 boolean NOT NULL DEFAULT false,
    has_tool_result              boolean NOT NULL DEFAULT false,
    raw                          jsonb,
    PRIMARY KEY (session_id, ordinal)
);

CREATE TABLE content_blocks (
    session_id       text NOT NULL,
    message_ordinal  integer NOT NULL,
    block_order      integer NOT NULL,
    block_type       text NOT NULL,
    text             text,
    thinking         text,
    tool_name        text,
    tool_use_id      text,
    tool_input       jsonb,
    is_error         boolean,
    result_text      text,
    PRIMARY KEY (session_id, message_ordinal, block_order),
    FOREIGN KEY (session_id, message_ordinal)
        REFERENCES transcript_messages (session_id, ordinal) ON DELETE CASCADE
);

-- Full-text search over what was said and what tools returned.
CREATE INDEX content_blocks_fts_idx ON content_blocks
    USING gin (to_tsvector('simple', coalesce(text, '') || ' ' || coalesce(result_text, '')));
CREATE INDEX content_blocks_tool_use_idx ON content_blocks (tool_use_id) WHERE tool_use_id IS NOT NULL;

CREATE TABLE events (
    id            text PRIMARY KEY,  -- ULID
    type          text NOT NULL,
    "timestamp"   timestamptz NOT NULL,
    device_id     text,
    workspace_id  text,
    session_id    text,
    data          jsonb NOT NULL DEFAULT '{}'::jsonb,
    ingested_at   timestamptz NOT NULL DEFAULT now(),
    -- Set when the event's handler has run to completion (or it has none): a redelivered event
    -- whose handler failed runs it again, one already handled is a duplicate.
    handled_at    timestamptz,
    handler_error text
);

CREATE INDEX events_session_idx ON events (session_id, "timestamp");
CREATE INDEX events_type_idx ON events (type, ingested_at);

-- Every worker's heartbeat: what the API reads for /healthz and /api/monitor.
CREATE TABLE workers (
    id            text PRIMARY KEY,
    mode          text NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    last_seen     timestamptz NOT NULL DEFAULT now(),
    queue_depth   integer NOT NULL DEFAULT 0,
    pipeline      jsonb NOT NULL DEFAULT '{}'::jsonb
);
