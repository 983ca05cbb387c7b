-- Restore and delete (issue 18).

-- The files a stored transcript is made of — the main transcript, then its subagent files — as
-- capture named them when it uploaded the body (`x-sessionflow-parts`): [{name, size, lines,
-- unterminated}]. NULL: one file, the main transcript.
ALTER TABLE sessions ADD COLUMN transcript_parts jsonb;

-- A deleted session's tombstone is its `session.deleted` event in the event log: found by
-- session when an upload or an event names the session again.
CREATE INDEX events_tombstones_idx ON events (session_id) WHERE type = 'session.deleted';

-- Blobs of deleted sessions still to remove: written in the deletion's transaction, forgotten
-- once the blob store has removed them; a sweep retries what the store could not remove.
CREATE TABLE blob_deletions (
    key    text PRIMARY KEY,
    since  timestamptz NOT NULL DEFAULT now()
);
