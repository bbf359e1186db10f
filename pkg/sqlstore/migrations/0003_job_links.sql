-- 0003: a job's callback URL (webhook of its terminal event) and the index
-- that lists a batch's jobs in order.

ALTER TABLE jobs ADD COLUMN callback_url TEXT NULL;

CREATE INDEX jobs_batch_id ON jobs (batch_id, id);
