-- API keys as data: the SHA-256 of each key (never the key), its role and the workspaces it
-- covers (NULL: every workspace). A revoked or expired key stays listed and opens nothing.
CREATE TABLE api_keys (
    id            text PRIMARY KEY,
    name          text NOT NULL,
    key_hash      bytea NOT NULL UNIQUE,
    role          text NOT NULL CHECK (role IN ('ingest', 'read', 'admin')),
    workspaces    text[],
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    expires_at    timestamptz,
    revoked_at    timestamptz
);
