-- One writer at a time. `writer_fence.epoch` grows by one at every takeover; each journal
-- transaction of the writer locks the row FOR SHARE where the epoch is still its own, so a
-- takeover (an UPDATE of the row) waits for the old writer's transactions in flight and every
-- later one of them finds no row and rolls back. The lease lives in its own table so that the
-- writer's heartbeat never waits for, nor blocks, its own journal transactions.

CREATE TABLE writer_fence (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    epoch       bigint NOT NULL,
    holder      text,         -- the instance that took the fence at this epoch
    acquired_at timestamptz
);
INSERT INTO writer_fence (epoch) VALUES (0);

CREATE TABLE writer_lease (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    epoch      bigint NOT NULL,
    holder     text,
    renewed_at timestamptz NOT NULL  -- the writer's heartbeat, on the server's clock
);
INSERT INTO writer_lease (epoch, renewed_at) VALUES (0, 'epoch');
