-- 0006: accounts. Users log in with a password (bcrypt hash) or use API
-- keys (only a SHA-256 of the secret is stored). Jobs already carry
-- user_id (0001); batches get one here.

CREATE TABLE users (
    id            TEXT     NOT NULL PRIMARY KEY, -- UUIDv7
    email         TEXT     NOT NULL UNIQUE,      -- lower-case
    role          TEXT     NOT NULL,
    password_hash TEXT     NOT NULL,
    disabled      SMALLINT NOT NULL DEFAULT 0,
    created_at    BIGINT   NOT NULL,
    updated_at    BIGINT   NOT NULL,
    last_login_at BIGINT   NULL,
    token_version INTEGER  NOT NULL DEFAULT 0,   -- tokens carry it; bumping it ends every session
    CONSTRAINT users_role_check CHECK (role IN ('admin', 'user')),
    CONSTRAINT users_disabled_check CHECK (disabled IN (0, 1))
);

CREATE TABLE api_keys (
    id           TEXT   NOT NULL PRIMARY KEY,       -- UUIDv7
    user_id      TEXT   NOT NULL REFERENCES users (id),
    name         TEXT   NOT NULL,
    prefix       TEXT   NOT NULL,
    hash         TEXT   NOT NULL UNIQUE,            -- hex SHA-256 of the secret
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT NULL,
    revoked_at   BIGINT NULL
);

CREATE INDEX api_keys_user_id ON api_keys (user_id, id);

ALTER TABLE batches ADD COLUMN user_id TEXT NULL;

-- A user's own listing: WHERE user_id = ? AND id < ? ORDER BY id DESC.
CREATE INDEX jobs_user_id ON jobs (user_id, id);
