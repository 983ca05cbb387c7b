-- A session's messages and blocks lose their row-by-row foreign keys. Postgres checks a foreign
-- key with one query per inserted row (≈9 µs each here), which made those checks a sixth of the
-- database's work in persisting a session of a hundred rows. Nothing is lost by it:
-- - only the store writes these rows, in persist, under the statement that moves the session
--   `ended → parsed` while its run holds the claim (the rows are inserted only if that update
--   took the session, whose row it holds until the transaction ends), and every block is written
--   beside the message it belongs to;
-- - the store deletes a session's blocks with its messages (as a run claims the session, and on
--   a reparse), and deleting or truncating sessions still takes both along, by the triggers
--   below: one statement for every session deleted together, not a cascade row by row.
ALTER TABLE content_blocks DROP CONSTRAINT content_blocks_session_id_message_ordinal_fkey;
ALTER TABLE transcript_messages DROP CONSTRAINT transcript_messages_session_id_fkey;

CREATE FUNCTION sessions_delete_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM content_blocks b USING gone g WHERE b.session_id = g.id;
    DELETE FROM transcript_messages m USING gone g WHERE m.session_id = g.id;
    RETURN NULL;
END $$;

CREATE TRIGGER sessions_delete_rows
    AFTER DELETE ON sessions REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION sessions_delete_rows();

CREATE FUNCTION sessions_truncate_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE content_blocks, transcript_messages;
    RETURN NULL;
END $$;

CREATE TRIGGER sessions_truncate_rows
    AFTER TRUNCATE ON sessions
    FOR EACH STATEMENT EXECUTE FUNCTION sessions_truncate_rows();
