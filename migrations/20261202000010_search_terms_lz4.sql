-- A block's words (search_entries.terms) are compressed with lz4 where the server was built with
-- it, as content_blocks' large text is (migration 0007): the search processor compresses every
-- entry it writes, and a phrase is checked on the stored words of each entry that holds all its
-- words, decompressing them. A server without lz4 keeps pglz.
DO $$
BEGIN
    EXECUTE 'ALTER TABLE search_entries ALTER COLUMN terms SET COMPRESSION lz4';
EXCEPTION WHEN feature_not_supported OR syntax_error THEN
    RAISE NOTICE 'no lz4 on this server: search terms stay compressed with pglz';
END
$$;
