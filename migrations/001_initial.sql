-- The system of record: listings and bids (the journal), loans and fills (the books),
-- the event outbox, idempotency records and API keys.

CREATE TABLE listings (
    id                uuid PRIMARY KEY,
    seq               bigint NOT NULL UNIQUE,
    borrower_id       text NOT NULL,
    amount            bigint NOT NULL,
    term_months       integer NOT NULL,
    max_rate_bps      integer NOT NULL,
    grade             text NOT NULL,
    closes_at         timestamptz NOT NULL,
    min_funding_bps   integer NOT NULL,
    close_when_funded boolean NOT NULL,
    pricing           text NOT NULL,
    opened_at         timestamptz NOT NULL,
    status            text NOT NULL DEFAULT 'open'
                      CHECK (status IN ('open', 'funded', 'failed', 'cancelled')),
    closed_at         timestamptz,
    close_reason      text,
    funded_amount     bigint,
    bid_count         integer,
    marginal_rate_bps integer,
    loan_id           uuid
);
CREATE INDEX listings_open ON listings (seq) WHERE status = 'open';
CREATE INDEX listings_status_grade ON listings (status, grade, seq);

CREATE TABLE bids (
    id               uuid PRIMARY KEY,
    listing_id       uuid NOT NULL REFERENCES listings (id),
    lender_id        text NOT NULL,
    amount           bigint NOT NULL,
    min_rate_bps     integer NOT NULL,
    seq              bigint NOT NULL UNIQUE,
    placed_at        timestamptz NOT NULL,
    -- Final status and allocation are written once, with the listing's resolution.
    status           text NOT NULL DEFAULT 'active'
                     CHECK (status IN ('active', 'outbid', 'won', 'lost')),
    allocated_amount bigint
);
CREATE INDEX bids_listing ON bids (listing_id, seq);
CREATE INDEX bids_lender ON bids (lender_id, seq);

CREATE TABLE loans (
    id          uuid PRIMARY KEY,
    listing_id  uuid NOT NULL UNIQUE REFERENCES listings (id),  -- resolved exactly once
    borrower_id text NOT NULL,
    principal   bigint NOT NULL,
    rate_bps    integer NOT NULL,
    term_months integer NOT NULL,
    pricing     text NOT NULL,
    funded_at   timestamptz NOT NULL
);

CREATE TABLE fills (
    loan_id   uuid NOT NULL REFERENCES loans (id),
    bid_id    uuid PRIMARY KEY REFERENCES bids (id),
    lender_id text NOT NULL,
    seq       bigint NOT NULL,
    amount    bigint NOT NULL,
    rate_bps  integer NOT NULL
);
CREATE INDEX fills_loan ON fills (loan_id, seq);

CREATE TABLE events (
    seq        bigserial PRIMARY KEY,
    id         uuid NOT NULL UNIQUE,
    type       text NOT NULL,
    listing_id uuid,
    created_at timestamptz NOT NULL,
    data       jsonb NOT NULL
);

CREATE TABLE idempotency_keys (
    scope        text NOT NULL,
    key          text NOT NULL,
    request_hash bytea NOT NULL,
    status       integer NOT NULL,
    body         bytea NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);

CREATE TABLE api_keys (
    id         uuid PRIMARY KEY,
    key_hash   bytea NOT NULL UNIQUE,
    role       text NOT NULL CHECK (role IN ('admin', 'borrower', 'lender')),
    subject    text NOT NULL,
    created_at timestamptz NOT NULL
);
