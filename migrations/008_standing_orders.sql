-- Standing orders (automatic bidding): each order's state as its last command left it, the
-- auto bids' order on the bids, and the auto-bid cap and totals on the listings.

CREATE TABLE standing_orders (
    id                 uuid PRIMARY KEY,
    seq                bigint NOT NULL UNIQUE,
    lender_id          text NOT NULL,
    grades             text[] NOT NULL,
    term_months_min    integer NOT NULL,
    term_months_max    integer NOT NULL,
    min_rate_bps       integer NOT NULL,
    amount_per_listing bigint NOT NULL,
    budget             bigint NOT NULL,
    active             boolean NOT NULL,
    deleted            boolean NOT NULL,
    -- The place in the queue (smallest bids first); a new one each time the order bids.
    ticket             bigint NOT NULL,
    reserved           bigint NOT NULL CHECK (reserved >= 0),
    settled            bigint NOT NULL CHECK (settled >= 0),
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL
);
CREATE INDEX standing_orders_lender ON standing_orders (lender_id, seq) WHERE NOT deleted;
-- Recovery loads the orders still alive and the deleted ones whose bids are still live.
CREATE INDEX standing_orders_live ON standing_orders (seq) WHERE NOT deleted OR reserved > 0;

ALTER TABLE bids ADD COLUMN standing_order_id uuid REFERENCES standing_orders (id);

ALTER TABLE listings
    ADD COLUMN autobid_max_share_bps integer NOT NULL DEFAULT 8000,
    ADD COLUMN auto_bid_count        integer NOT NULL DEFAULT 0,
    ADD COLUMN auto_bid_amount       bigint NOT NULL DEFAULT 0;
