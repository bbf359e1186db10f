-- 0005: per-job encoding options (0: the default).

ALTER TABLE jobs ADD COLUMN bitrate_kbps INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN sample_rate INTEGER NOT NULL DEFAULT 0;
