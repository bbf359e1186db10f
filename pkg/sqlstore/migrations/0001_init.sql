-- 0001: the jobs table.
--
-- Portable SQL: it must also run on PostgreSQL. Timestamps are BIGINT unix
-- milliseconds, booleans SMALLINT 0/1, floats DOUBLE PRECISION.

CREATE TABLE jobs (
    id                 TEXT             NOT NULL PRIMARY KEY, -- UUIDv7: sorts by creation time
    status             TEXT             NOT NULL,
    text               TEXT             NOT NULL,
    voice              TEXT             NOT NULL,
    speed              DOUBLE PRECISION NOT NULL,
    format             TEXT             NOT NULL,
    queue              TEXT             NOT NULL,
    attempts           INTEGER          NOT NULL DEFAULT 0,
    max_attempts       INTEGER          NOT NULL,
    error              TEXT             NOT NULL DEFAULT '',
    cancel_requested   SMALLINT         NOT NULL DEFAULT 0,
    idempotency_key    TEXT             NULL UNIQUE,          -- NULL when the client sent none
    request_hash       TEXT             NOT NULL DEFAULT '',
    audio_key          TEXT             NULL,
    audio_content_type TEXT             NULL,
    audio_bytes        BIGINT           NULL,
    audio_duration     DOUBLE PRECISION NULL,                 -- seconds
    engine             TEXT             NOT NULL DEFAULT '',
    device             TEXT             NOT NULL DEFAULT '',
    -- Reserved for planned features (accounts, batches, the audio cache);
    -- unused by this version. Adding them now spares a migration later.
    user_id            TEXT             NULL,
    batch_id           TEXT             NULL,
    cache_hit          SMALLINT         NOT NULL DEFAULT 0,
    created_at         BIGINT           NOT NULL,
    started_at         BIGINT           NULL,
    finished_at        BIGINT           NULL,
    updated_at         BIGINT           NOT NULL,
    CONSTRAINT jobs_status_check CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'canceled')),
    CONSTRAINT jobs_attempts_check CHECK (attempts >= 0 AND max_attempts >= 1),
    CONSTRAINT jobs_cancel_requested_check CHECK (cancel_requested IN (0, 1)),
    CONSTRAINT jobs_cache_hit_check CHECK (cache_hit IN (0, 1))
);

-- ListJobs with a status filter: WHERE status = ? AND id < ? ORDER BY id DESC.
CREATE INDEX jobs_status_id ON jobs (status, id);

-- StaleJobs (the reconciler): live jobs, least recently updated first.
-- Partial, so it holds only the few live jobs; the query repeats this WHERE
-- clause verbatim so that SQLite may use it. (Without statistics SQLite
-- prefers jobs_status_id and sorts the live jobs, which is cheap too.)
CREATE INDEX jobs_live_updated_at ON jobs (updated_at, id) WHERE status IN ('queued', 'running');
