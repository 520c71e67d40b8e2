"""The custody ledger: every account's available and reserved money, moved by double entries.

After TigerBeetle's two-phase transfers: a bid *reserves* its amount (pending), an outbid or a
failed listing *releases* it (void), a funded listing *settles* it to the borrower (post).
`reserved` is the pending column, kept by the entries themselves, never computed on the side.

Every movement is a `LedgerEntry` with a debit and a credit account and what caused it; the
ledger numbers its entries, so a replay of the same commands gives the same numbers. Money comes
in from, and goes out to, `external`, which is not an account: the sum of every account's
`available + reserved` is the net inflow (deposits minus withdrawals), an invariant.
Every operation is O(1).
"""

from dataclasses import dataclass
from typing import Final, Literal

EntryKind = Literal[
    "deposit", "withdrawal", "reserve", "release", "settle", "fee", "reserve_contribution"
]
CauseType = Literal["bid", "listing", "loan", "deposit", "withdrawal"]

EXTERNAL: Final = "external"
FEES: Final = "platform:fees"
RESERVE_POOL: Final = "platform:reserve"
PLATFORM_ACCOUNTS: Final = (FEES, RESERVE_POOL)


@dataclass(slots=True)
class Balance:
    """An account's two columns, as views hand them out (a copy)."""

    available: int = 0
    reserved: int = 0


class Account:
    """An account as the ledger holds it: its two columns and its id, the one copy of the id
    that books keep for each of a lender's bids (a bid's own copy is dropped), found with the
    balance in the lookup a bid needs anyway."""

    __slots__ = ("account_id", "available", "reserved")

    def __init__(self, account_id: str, available: int = 0, reserved: int = 0) -> None:
        self.account_id = account_id
        self.available = available
        self.reserved = reserved

    def __repr__(self) -> str:  # what a failed invariant shows (`Ledger.check_invariants`)
        return f"Account({self.account_id!r}, available={self.available}, reserved={self.reserved})"


# Like the per-bid events (matching/events.py): not frozen, its own __init__. One of these is
# made for every bid placed.
@dataclass(slots=True, init=False)
class LedgerEntry:
    """One movement of `amount` (> 0) from the `debit` account to the `credit` account.

    `reserve` and `release` move money between the two columns of one account, so their debit
    and credit name the same account: reserve takes from available, release from reserved.
    """

    entry_id: int
    kind: EntryKind
    debit: str
    credit: str
    amount: int
    cause_type: CauseType
    cause_id: str
    listing_id: str | None
    bid_id: str | None
    at: int
    reference: str | None

    def __init__(
        self, entry_id: int, kind: EntryKind, debit: str, credit: str, amount: int,
        cause_type: CauseType, cause_id: str, listing_id: str | None, bid_id: str | None, at: int,
        reference: str | None = None,
    ) -> None:
        self.entry_id = entry_id
        self.kind = kind
        self.debit = debit
        self.credit = credit
        self.amount = amount
        self.cause_type = cause_type
        self.cause_id = cause_id
        self.listing_id = listing_id
        self.bid_id = bid_id
        self.at = at
        self.reference = reference


class Ledger:
    __slots__ = ("accounts", "last_entry_id", "net_inflow")

    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}
        self.last_entry_id = 0
        self.net_inflow = 0  # deposits minus withdrawals, ever

    def available(self, account: str) -> int:
        balance = self.accounts.get(account)
        return 0 if balance is None else balance.available

    def account_id(self, account: str) -> str:
        """The ledger's copy of the id (`account` itself if no such account: recovery then
        reports a bid whose lender has none). O(1)."""
        found = self.accounts.get(account)
        return account if found is None else found.account_id

    def _account(self, account: str) -> Account:
        balance = self.accounts.get(account)
        if balance is None:
            balance = self.accounts[account] = Account(account)
        return balance

    def _next_id(self) -> int:
        self.last_entry_id += 1
        return self.last_entry_id

    # --- money in and out -------------------------------------------------------------------

    def deposit(
        self, account: str, amount: int, deposit_id: str, at: int, reference: str | None
    ) -> LedgerEntry:
        self._account(account).available += amount
        self.net_inflow += amount
        return LedgerEntry(
            self._next_id(), "deposit", EXTERNAL, account, amount, "deposit", deposit_id, None,
            None, at, reference,
        )

    def withdraw(
        self, account: str, amount: int, withdrawal_id: str, at: int, reference: str | None
    ) -> LedgerEntry:
        """The caller has checked that `amount` is available."""
        self.accounts[account].available -= amount
        self.net_inflow -= amount
        return LedgerEntry(
            self._next_id(), "withdrawal", account, EXTERNAL, amount, "withdrawal",
            withdrawal_id, None, None, at, reference,
        )

    # --- bids -------------------------------------------------------------------------------

    def reserve(
        self, lender: Account, amount: int, listing_id: str, bid_id: str, at: int
    ) -> LedgerEntry:
        """Freeze a bid's amount. The caller looked `lender` up and checked it covers `amount`."""
        lender.available -= amount
        lender.reserved += amount
        self.last_entry_id += 1
        account = lender.account_id
        return LedgerEntry(
            self.last_entry_id, "reserve", account, account, amount, "bid", bid_id, listing_id,
            bid_id, at,
        )

    def release(
        self, lender: str, amount: int, cause_type: CauseType, cause_id: str, listing_id: str,
        bid_id: str, at: int,
    ) -> LedgerEntry:
        """Unfreeze (part of) a bid's amount: outbid, a failed listing, or a fill's rest."""
        balance = self.accounts[lender]
        balance.reserved -= amount
        balance.available += amount
        self.last_entry_id += 1
        return LedgerEntry(
            self.last_entry_id, "release", lender, lender, amount, cause_type, cause_id,
            listing_id, bid_id, at,
        )

    def settle(
        self, lender: str, borrower: str, amount: int, loan_id: str, listing_id: str, bid_id: str,
        at: int,
    ) -> LedgerEntry:
        """A fill: the lender's reserved money becomes the borrower's."""
        self.accounts[lender].reserved -= amount
        self._account(borrower).available += amount
        return LedgerEntry(
            self._next_id(), "settle", lender, borrower, amount, "loan", loan_id, listing_id,
            bid_id, at,
        )

    def collect(
        self, kind: Literal["fee", "reserve_contribution"], borrower: str, platform: str,
        amount: int, loan_id: str, listing_id: str, at: int,
    ) -> LedgerEntry:
        """The borrower pays a platform account out of the disbursed principal."""
        self.accounts[borrower].available -= amount
        self._account(platform).available += amount
        return LedgerEntry(
            self._next_id(), kind, borrower, platform, amount, "loan", loan_id, listing_id, None,
            at,
        )

    # --- recovery and checks ----------------------------------------------------------------

    def restore(self, account: str, available: int, reserved: int) -> None:
        """Put back a stored balance (recovery). The net inflow is the sum of what is held."""
        self.accounts[account] = Account(account, available, reserved)
        self.net_inflow += available + reserved

    def check_invariants(self, live_reserved: dict[str, int]) -> None:
        """Conservation, no negative balance, reserved = the account's live bids. O(accounts)."""
        held = 0
        for account, balance in self.accounts.items():
            assert balance.available >= 0 and balance.reserved >= 0, (account, balance)
            assert balance.reserved == live_reserved.get(account, 0), (account, balance)
            held += balance.available + balance.reserved
        assert held == self.net_inflow, f"held {held} != deposits - withdrawals {self.net_inflow}"
        assert set(live_reserved) <= set(self.accounts), "a live bid without an account"
        assert EXTERNAL not in self.accounts
