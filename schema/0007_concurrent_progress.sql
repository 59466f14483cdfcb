-- pgpm catalog, step 7: what an interrupted concurrent patch had done.
--
-- A concurrent patch's statements run one by one in autocommit on a second
-- connection, while the patch's history row waits uncommitted on the
-- first. When pgpm dies in between, the row is rolled back, but the
-- statements that completed stay done. Each one is recorded here as it
-- completes (in autocommit, like the statement), so that the next run can
-- say truthfully what ran; the rows go when the patch is recorded.

CREATE TABLE _pgpm.concurrent_progress (
    major        integer NOT NULL,
    minor        integer NOT NULL,
    point        integer NOT NULL,
    file_name    text NOT NULL,
    statement    integer NOT NULL,
    statements   integer NOT NULL,
    excerpt      text NOT NULL,
    finished_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (major, minor, point, statement)
);
COMMENT ON TABLE _pgpm.concurrent_progress IS 'statements of concurrent patches that completed before their patch was recorded';
