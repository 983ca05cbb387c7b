-- The session list sorted by cost, output tokens or messages (GET /api/sessions?sort=…, the
-- monitor's sessions view): each order, either direction, with creation time and id breaking
-- ties, read from an index instead of sorting every session for each page.
CREATE INDEX sessions_by_cost_idx ON sessions (cost_estimate_usd, created_at, id);
CREATE INDEX sessions_by_tokens_idx ON sessions (tokens_out, created_at, id);
CREATE INDEX sessions_by_messages_idx ON sessions (total_messages, created_at, id);
