-- Search ranks the newest matches of a query (at most a few thousand), not every match: a word
-- found in most blocks is read along this index, newest first, instead of ranking millions.
CREATE INDEX search_entries_newest_idx ON search_entries ("timestamp" DESC NULLS LAST);
