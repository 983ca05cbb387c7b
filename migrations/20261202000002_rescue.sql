-- Rescue: every claim names its owner, so a dead worker's work is found and handed on.
--
-- sessions.claimed_by: the worker whose run holds the session (`parsing`, then through its
-- summary), and sessions.claim: that run's own token, which its writes must match (two runs in
-- one worker are two claims); sessions.enqueued_by: the worker whose queue holds the session
-- (with enqueued_at). sessions.failed_stage: the stage a failed run ended in, as the runner
-- recorded it.
ALTER TABLE sessions
    ADD COLUMN claimed_by   text,
    ADD COLUMN claim        text,
    ADD COLUMN enqueued_by  text,
    ADD COLUMN failed_stage text;

-- Health looks for sessions held by workers that went silent: claims are short-lived, so these
-- stay small.
CREATE INDEX sessions_claimed_idx ON sessions (claimed_by) WHERE claimed_by IS NOT NULL;
CREATE INDEX sessions_enqueued_by_idx ON sessions (enqueued_by) WHERE enqueued_by IS NOT NULL;

-- Events the API accepted are kept here before the stream hears of them; a worker handling one
-- holds a lease (leased_by, leased_until) so that the stream and the sweep of unhandled events
-- never run its handler twice, and a dead worker's lease lapses with its heartbeat.
ALTER TABLE events
    ADD COLUMN leased_by    text,
    ADD COLUMN leased_until timestamptz;

-- Unhandled events, oldest first: the sweep's and health's question.
CREATE INDEX events_unhandled_idx ON events (ingested_at) WHERE handled_at IS NULL;
