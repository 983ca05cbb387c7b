-- When each processor's current or last run began, and when the last run that went through every
-- session (and ended without error) began. A catch-up before a report or a search looks only at
-- the sessions changed since then (a minute before it, for transactions still open when it began)
-- instead of at every session; the scheduled runs still go through all of them.
ALTER TABLE processor_runs
    ADD COLUMN run_started_at timestamptz,
    ADD COLUMN swept_at       timestamptz;
