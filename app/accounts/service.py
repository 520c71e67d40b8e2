"""Reading accounts: balances from the engine's ledger (memory), entries from Postgres.

Writes (deposits, withdrawals) are engine commands and go through `Market.move_money`, so
they are journaled, ordered and acknowledged exactly like bids.
"""

from app.accounts.store import AccountStore
from app.auth import Principal
from app.errors import NotFound
from app.market import Market
from app.rendering import Json, entry_from_row
from matching import PLATFORM_ACCOUNTS
from matching.rejections import ACCOUNT_NOT_FOUND


class Accounts:
    def __init__(self, market: Market, store: AccountStore) -> None:
        self.market = market
        self.store = store

    def account(self, who: Principal, account_id: str) -> Json:
        """The owner's or an admin's view of one account's balances. O(1)."""
        _require_owner(who, account_id)
        found = self.market.account_json(account_id)
        if found is None:
            raise NotFound(ACCOUNT_NOT_FOUND, "no money has reached this account")
        return found

    async def entries(self, who: Principal, account_id: str, after: int, limit: int) -> Json:
        _require_owner(who, account_id)
        rows = await self.store.entries(account_id, after, limit)
        if not rows and after == 0 and self.market.account_json(account_id) is None:
            raise NotFound(ACCOUNT_NOT_FOUND, "no money has reached this account")
        return {
            "data": [entry_from_row(r) for r in rows],
            "next_after": rows[-1]["id"] if rows else after,
        }

    def platform(self) -> Json:
        """The fee and risk-reserve pools (zero until a loan pays into them)."""
        data = [
            self.market.account_json(account) or {
                "id": account, "currency": self.market.currency, "available": 0, "reserved": 0,
            }
            for account in PLATFORM_ACCOUNTS
        ]
        return {"data": data}


def _require_owner(who: Principal, account_id: str) -> None:
    who.require_subject(account_id)
