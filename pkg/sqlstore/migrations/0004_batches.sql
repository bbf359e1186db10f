-- 0004: batches. A batch is a group of jobs submitted together; its items
-- are ordinary jobs carrying the batch's id (jobs.batch_id, indexed by 0003)
-- and the caller's key for the item (jobs.batch_key, unique per batch).

CREATE TABLE batches (
    id              TEXT             NOT NULL PRIMARY KEY, -- UUIDv7
    status          TEXT             NOT NULL,             -- running or canceled; completed is derived from the items
    item_count      INTEGER          NOT NULL,
    voice           TEXT             NOT NULL,             -- the items' defaults, as validated
    speed           DOUBLE PRECISION NOT NULL,
    format          TEXT             NOT NULL,
    callback_url    TEXT             NULL,
    idempotency_key TEXT             NULL UNIQUE,          -- NULL when the client sent none
    request_hash    TEXT             NOT NULL DEFAULT '',
    created_at      BIGINT           NOT NULL,
    updated_at      BIGINT           NOT NULL,
    CONSTRAINT batches_status_check CHECK (status IN ('running', 'canceled')),
    CONSTRAINT batches_item_count_check CHECK (item_count >= 1)
);

ALTER TABLE jobs ADD COLUMN batch_key TEXT NULL;

-- One key per batch. NULLs are distinct, so jobs outside batches are free.
CREATE UNIQUE INDEX jobs_batch_key ON jobs (batch_id, batch_key);
