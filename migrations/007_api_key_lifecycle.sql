-- API key lifecycle: list (seq is the cursor, newest first), a short prefix to recognise a key
-- by, optional expiry, revocation, and when each key was last used (to the minute).

ALTER TABLE api_keys
    ADD COLUMN seq          bigint GENERATED ALWAYS AS IDENTITY,
    ADD COLUMN prefix       text,         -- the key's first characters; NULL for older keys
    ADD COLUMN expires_at   timestamptz,  -- NULL: never
    ADD COLUMN revoked_at   timestamptz,  -- set once; a revoked key is never accepted again
    ADD COLUMN last_used_at timestamptz;  -- written in batches, at most once a minute per key

CREATE UNIQUE INDEX api_keys_seq ON api_keys (seq);
CREATE INDEX api_keys_subject ON api_keys (subject, seq);
