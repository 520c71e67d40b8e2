-- Webhooks at scale and at rest (docs/operations.md).

-- Signing secrets are stored sealed (Fernet, key from LOAN_AUCTION_SECRETS_KEY). Clear-text
-- secrets from 002 stay readable until the next start seals them and empties `secret`.
ALTER TABLE webhook_endpoints ADD COLUMN secret_sealed text;
ALTER TABLE webhook_endpoints ALTER COLUMN secret DROP NOT NULL;
ALTER TABLE webhook_endpoints
    ADD CONSTRAINT webhook_endpoints_secret_kept CHECK (secret IS NOT NULL OR secret_sealed IS NOT NULL);

-- Several deliveries in flight per endpoint, claimed in event order from an index.
ALTER TABLE webhook_deliveries ADD COLUMN event_seq bigint;
UPDATE webhook_deliveries d SET event_seq = e.seq
FROM events e WHERE e.id = d.event_id AND d.status = 'pending';
CREATE INDEX webhook_deliveries_endpoint_due
    ON webhook_deliveries (endpoint_id, next_attempt_at, event_seq) WHERE status = 'pending';

-- Retention: settled deliveries and attempts older than LOAN_AUCTION_WEBHOOK_RETENTION_DAYS.
CREATE INDEX webhook_attempts_age ON webhook_attempts (attempted_at);
CREATE INDEX webhook_deliveries_settled_age
    ON webhook_deliveries (created_at) WHERE status <> 'pending';
