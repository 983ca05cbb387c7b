-- Search: one entry per block that holds text (text, thinking, a tool's input, a tool's result),
-- its words (split at everything that is not a letter or digit, unstemmed: `simple`) under a
-- GIN index, kept by the `search` processor off the persist path. The GIN index content_blocks
-- had over the same text was kept up on every persist and read by nothing: it goes.
DROP INDEX IF EXISTS content_blocks_fts_idx;

CREATE TABLE search_entries (
    session_id       text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    message_ordinal  integer NOT NULL,
    block_order      integer NOT NULL,
    workspace_id     text NOT NULL,
    device_id        text,
    "timestamp"      timestamptz,
    role             text,
    kind             text NOT NULL CHECK (kind IN ('text', 'thinking', 'tool_input', 'tool_result')),
    tool_name        text,
    terms            tsvector NOT NULL,
    PRIMARY KEY (session_id, message_ordinal, block_order)
);
CREATE INDEX search_entries_terms_idx ON search_entries USING gin (terms);
