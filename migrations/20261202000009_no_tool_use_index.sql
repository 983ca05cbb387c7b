-- content_blocks_tool_use_idx covered every tool call and result of every session by its id
-- alone, and was kept up on every persist; every query that matches a result to its call does
-- so within one session, which the primary key (session_id, …) already narrows to.
DROP INDEX IF EXISTS content_blocks_tool_use_idx;
