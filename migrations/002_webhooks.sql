-- Webhook subscriptions, one delivery per (event, endpoint), and every attempt's log.

CREATE TABLE webhook_endpoints (
    id              uuid PRIMARY KEY,
    url             text NOT NULL,
    event_types     text[] NOT NULL,
    description     text NOT NULL DEFAULT '',
    secret          text NOT NULL,  -- needed in the clear to sign; shown to the admin once
    status          text NOT NULL DEFAULT 'enabled'
                    CHECK (status IN ('enabled', 'disabled', 'deleted')),
    disabled_reason text,
    created_at      timestamptz NOT NULL
);

CREATE TABLE webhook_deliveries (
    id              uuid PRIMARY KEY,
    event_id        uuid NOT NULL REFERENCES events (id),
    endpoint_id     uuid NOT NULL REFERENCES webhook_endpoints (id),
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed', 'cancelled')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    created_at      timestamptz NOT NULL,
    delivered_at    timestamptz,
    last_error      text,
    UNIQUE (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at);

CREATE TABLE webhook_attempts (
    id           bigserial PRIMARY KEY,
    delivery_id  uuid NOT NULL REFERENCES webhook_deliveries (id),
    attempted_at timestamptz NOT NULL,
    status_code  integer,
    latency_ms   integer NOT NULL,
    error        text
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);

-- How far the fan-out has read the event log (the outbox relay's cursor).
CREATE TABLE webhook_fanout (
    id             integer PRIMARY KEY CHECK (id = 1),
    last_event_seq bigint NOT NULL
);
INSERT INTO webhook_fanout (id, last_event_seq) VALUES (1, 0);
