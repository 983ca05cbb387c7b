-- Uploads being staged (written aside before they replace a transcript): a crash between
-- staging and renaming leaves a row here, and a sweep removes the staged object after an hour.
CREATE TABLE staged_uploads (
    key         text PRIMARY KEY,
    started_at  timestamptz NOT NULL DEFAULT now()
);
