"""Walking the chain: verify it from Postgres, and chain events stored before it existed."""

import logging
from dataclasses import dataclass

from app.audit import store
from app.audit.chain import GENESIS, canonical, link, reference_canonical
from app.audit.store import Connection
from app.rendering import event_from_row

log = logging.getLogger(__name__)

PAGE = 1000


@dataclass(frozen=True, slots=True)
class Verdict:
    count: int
    head: str
    #: The first event whose stored hash is not the recomputed one; None when all match.
    bad_seq: int | None = None
    stored: str | None = None
    computed: str | None = None


async def verify(conn: Connection, page: int = PAGE) -> Verdict:
    """Recompute every hash in seq order, a page at a time, from the rendered events.

    Uses the definition's own encoder (the standard library's json), not the writer's, so a
    stored hash the writer got wrong is found too.
    """
    head, count, after = GENESIS, 0, 0
    while rows := await store.page(conn, after, page):
        for row in rows:
            event = event_from_row(row)
            stored = event.pop("hash")
            computed = link(head, reference_canonical(event))
            if stored != computed:
                return Verdict(count, head, row["seq"], stored, computed)
            head, count = computed, count + 1
        after = rows[-1]["seq"]
    return Verdict(count, head)


async def backfill(conn: Connection, page: int = PAGE) -> int:
    """Give events stored before the chain existed (hash NULL) their hashes, in seq order.

    Runs at start, before the journal writer takes over the head. Idempotent: two instances
    starting together compute the same hashes and only fill what is still NULL.
    """
    first = await store.first_unchained(conn)
    if first is None:
        return 0
    head = await store.hash_before(conn, first) or GENESIS
    done, after = 0, first - 1
    while rows := await store.page(conn, after, page):
        seqs, hashes = [], []
        for row in rows:
            event = event_from_row(row)
            del event["hash"]
            head = link(head, canonical(event))
            if row["hash"] is None:
                seqs.append(row["seq"])
                hashes.append(head)
        await store.set_hashes(conn, seqs, hashes)
        done += len(seqs)
        after = rows[-1]["seq"]
    log.info("audit chain: hashed events stored before it", extra={"events": done})
    return done
