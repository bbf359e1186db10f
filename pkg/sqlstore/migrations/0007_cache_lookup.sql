-- 0007: FindCached (WHERE cache_key = ? AND status = 'succeeded' ORDER BY id
-- DESC LIMIT 1) also orders by id. Without id in the index SQLite preferred
-- jobs_status_id and scanned every succeeded job on each cache miss: 10-17 ms
-- at 36,000 jobs, 83% of the API's CPU in a soak. With it, 16 µs.

DROP INDEX jobs_cache_key;
CREATE INDEX jobs_cache_key ON jobs (cache_key, status, id);
