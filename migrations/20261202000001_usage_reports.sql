-- Usage reports answer at once when nothing changed: `usage_generation` moves in the same
-- transaction as any change to the usage processor's rows, and a report computed at one
-- generation is kept in `usage_report_cache` under its request until the generation moves.
CREATE TABLE usage_generation (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    n          bigint NOT NULL
);
INSERT INTO usage_generation (n) VALUES (0);

CREATE FUNCTION usage_generation_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE usage_generation SET n = n + 1;
    RETURN NULL;
END $$;

CREATE TRIGGER usage_responses_generation
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON usage_responses
    FOR EACH STATEMENT EXECUTE FUNCTION usage_generation_bump();
CREATE TRIGGER usage_sessions_generation
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON usage_sessions
    FOR EACH STATEMENT EXECUTE FUNCTION usage_generation_bump();

CREATE TABLE usage_report_cache (
    -- The report asked for: grouping, time zone and date range.
    request     text PRIMARY KEY,
    generation  bigint NOT NULL,
    -- The report's rows as computed (key, model, four token counts, cost, priced).
    lines       jsonb NOT NULL,
    computed_at timestamptz NOT NULL DEFAULT now()
);
