-- The custody ledger (balances and double entries) and the grade policy each listing opened under.

CREATE TABLE accounts (
    id         text PRIMARY KEY,
    available  bigint NOT NULL CHECK (available >= 0),
    reserved   bigint NOT NULL CHECK (reserved >= 0),
    updated_at timestamptz NOT NULL
);

-- Numbered by the engine in the order it made them (which is commit order): `id` is the cursor.
CREATE TABLE ledger_entries (
    id             bigint PRIMARY KEY,
    kind           text NOT NULL CHECK (kind IN ('deposit', 'withdrawal', 'reserve', 'release',
                                                 'settle', 'fee', 'reserve_contribution')),
    debit_account  text NOT NULL,
    credit_account text NOT NULL,
    amount         bigint NOT NULL CHECK (amount > 0),
    cause_type     text NOT NULL CHECK (cause_type IN ('bid', 'listing', 'loan', 'deposit',
                                                       'withdrawal')),
    cause_id       uuid NOT NULL,
    listing_id     uuid,
    bid_id         uuid,
    reference      text,
    created_at     timestamptz NOT NULL
);
CREATE INDEX ledger_entries_debit ON ledger_entries (debit_account, id);
CREATE INDEX ledger_entries_credit ON ledger_entries (credit_account, id);

-- A listing keeps the policy it opened under; `loan_id` is chosen at open (shown once funded).
ALTER TABLE listings
    ADD COLUMN floor_rate_bps       integer NOT NULL DEFAULT 0,
    ADD COLUMN service_fee_bps      integer NOT NULL DEFAULT 0,
    ADD COLUMN reserve_bps          integer NOT NULL DEFAULT 0,
    ADD COLUMN max_lender_share_bps integer NOT NULL DEFAULT 10000;

ALTER TABLE loans
    ADD COLUMN service_fee          bigint NOT NULL DEFAULT 0,
    ADD COLUMN reserve_contribution bigint NOT NULL DEFAULT 0;
