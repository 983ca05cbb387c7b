-- Search entries hold a term for each pair of neighbouring words (`~p` and a hash of the pair:
-- each term stands for a few of the pairs written), so that a phrase is found by its pairs, rare
-- even where its words are common; and their words are split by the search processor the way a
-- query is, not by Postgres' parser. Every session is indexed again by the processor's scheduled
-- runs (they take the sessions it has no state for); until its turn, a session's entries are
-- found by their words as before, and by a phrase only in the newest entries a search reads one
-- by one.
DELETE FROM processor_state WHERE processor_name = 'search';
