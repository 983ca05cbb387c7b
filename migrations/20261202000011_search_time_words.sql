-- Each search entry also holds the words of its time (UTC): `~y2026`, `~m202611`, `~d20261130`.
-- No document word looks like one (documents are split at every character that is not a letter
-- or digit), and they are never ranked. A search that needs the matches of a span of time asks
-- the word index for its words AND the span's time words, so that only the matches inside the
-- span are read, not every match of a word found in a hundred thousand blocks.
CREATE FUNCTION search_time_words(at timestamptz) RETURNS tsvector
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN at IS NULL THEN ''::tsvector ELSE array_to_tsvector(ARRAY[
        '~y' || to_char(at AT TIME ZONE 'UTC', 'YYYY'),
        '~m' || to_char(at AT TIME ZONE 'UTC', 'YYYYMM'),
        '~d' || to_char(at AT TIME ZONE 'UTC', 'YYYYMMDD')]) END
$$;

-- Entries already written get theirs. The word index is built again after (faster than kept up
-- row by row over millions of entries).
DROP INDEX search_entries_terms_idx;
UPDATE search_entries SET terms = terms || search_time_words("timestamp")
WHERE "timestamp" IS NOT NULL;
CREATE INDEX search_entries_terms_idx ON search_entries USING gin (terms);
