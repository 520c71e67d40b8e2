"""The live view's rules: who may open which stream, and where it starts.

- `GET /v1/listings/{id}/stream`: any key, as any read; lenders' ids are masked for all but
  admins (a lender sees its own). Without Last-Event-ID it starts at the listing's first event,
  so a page can show the whole auction from this one source; it ends after the resolution.
- `GET /v1/events/stream`: admins only; every event, from now without Last-Event-ID.
How a stream resumes, goes live and ends is `app/live/stream.py`.
"""


from app.auth import Principal
from app.errors import Unavailable
from app.live.frames import Viewer
from app.live.hub import Hub
from app.live.store import LiveStore
from app.live.stream import Stream
from app.live.subscriber import Subscriber
from app.market import Market, canonical_id


class Live:
    def __init__(self, hub: Hub, store: LiveStore, market: Market) -> None:
        self.hub = hub
        self.store = store
        self.market = market

    async def start(self) -> None:
        """Before the journal writer commits anything: the hub's history starts here."""
        self.hub.start(await self.store.last_event_seq())

    async def listing_stream(
        self, who: Principal, listing_id: str, last_event_id: int | None
    ) -> Stream:
        """Any key may watch a listing (as any read); lenders' ids are masked for non-admins."""
        listing_id = canonical_id(listing_id)
        if self.market.engine.summary(listing_id) is None:
            row = await self.market.stored_listing(listing_id)
            if row["status"] == "open":  # in Postgres, not yet in the books: still recovering
                raise Unavailable("the service is rebuilding its books; retry shortly")
        sub = Subscriber(listing_id, viewer(who))
        return Stream(self.hub, self.store, self.market, sub, last_event_id or 0)

    def events_stream(self, who: Principal, last_event_id: int | None) -> Stream:
        who.require("admin")
        sub = Subscriber(None, Viewer(True, None))
        return Stream(self.hub, self.store, self.market, sub, last_event_id)


def viewer(who: Principal) -> Viewer:
    return Viewer(who.role == "admin", who.subject if who.role == "lender" else None)
