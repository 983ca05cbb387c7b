-- `sessionflow process DIR`: what each transcript file held when last hashed, so that a file
-- whose size and modification time have not changed is not read again.
CREATE TABLE offline_files (
    path        text PRIMARY KEY,
    session_id  text NOT NULL,
    size        bigint NOT NULL,
    mtime_ns    bigint NOT NULL,
    sha256      text NOT NULL
);
