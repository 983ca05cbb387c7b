-- Large text (tool results above all) is compressed with lz4 where the server was built with it:
-- pglz compression was the largest single cost of persist inside Postgres (the pipeline bench's
-- generated sessions: 167.5 → 208.3 sessions/s). A server without lz4 keeps pglz.
DO $$
BEGIN
    EXECUTE 'ALTER TABLE content_blocks '
        'ALTER COLUMN text SET COMPRESSION lz4, '
        'ALTER COLUMN thinking SET COMPRESSION lz4, '
        'ALTER COLUMN result_text SET COMPRESSION lz4, '
        'ALTER COLUMN tool_input SET COMPRESSION lz4';
    EXECUTE 'ALTER TABLE transcript_messages ALTER COLUMN raw SET COMPRESSION lz4';
EXCEPTION WHEN feature_not_supported OR syntax_error THEN
    RAISE NOTICE 'no lz4 on this server: large text stays compressed with pglz';
END
$$;
