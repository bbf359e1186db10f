-- 0002: the audio cache. A succeeded job records the key of everything that
-- determined its audio (engine and model, voice, speed, format, normalised
-- text); an identical request later reuses that audio.

ALTER TABLE jobs ADD COLUMN cache_key TEXT NULL;

-- FindCached: WHERE cache_key = ? AND status = 'succeeded'.
CREATE INDEX jobs_cache_key ON jobs (cache_key, status);
