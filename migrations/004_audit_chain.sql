-- The audit chain: each event's hash links it to the event before it (docs/operations.md).
-- The journal writer fills it in the transaction that stores the event. Events stored before
-- this migration get theirs at the next start, in Python, because the canonical JSON is not
-- the text Postgres prints for jsonb.
ALTER TABLE events ADD COLUMN hash text CHECK (hash ~ '^[0-9a-f]{64}$');
