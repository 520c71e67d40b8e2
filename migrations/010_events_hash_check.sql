-- The same rule as 004's check (64 lowercase hex digits, or NULL before the backfill), in a
-- form Postgres evaluates without running its regex engine over 64 bounded repetitions: that
-- check cost ~5 µs of Postgres' CPU per stored event, a sixth of a bid's (BENCHMARKS.md).
ALTER TABLE events DROP CONSTRAINT events_hash_check;
ALTER TABLE events ADD CONSTRAINT events_hash_check
    CHECK (length(hash) = 64 AND hash !~ '[^0-9a-f]');
