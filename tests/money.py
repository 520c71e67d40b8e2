"""Checks of the custody ledger against Postgres, shared by the integration and e2e tiers."""

import asyncpg

Balances = dict[str, tuple[int, int]]

_DERIVED = """
WITH sides AS (
    SELECT debit_account AS account,
           CASE WHEN kind IN ('release', 'settle') THEN 0 ELSE -amount END AS available,
           CASE WHEN kind IN ('release', 'settle') THEN -amount ELSE 0 END AS reserved
    FROM ledger_entries
    UNION ALL
    SELECT credit_account,
           CASE WHEN kind = 'reserve' THEN 0 ELSE amount END,
           CASE WHEN kind = 'reserve' THEN amount ELSE 0 END
    FROM ledger_entries
)
SELECT account, sum(available)::bigint AS available, sum(reserved)::bigint AS reserved
FROM sides WHERE account <> 'external' GROUP BY account
"""
_NET_INFLOW = """
SELECT coalesce(sum(CASE kind WHEN 'deposit' THEN amount ELSE -amount END), 0)::bigint
FROM ledger_entries WHERE kind IN ('deposit', 'withdrawal')
"""


async def assert_conserved(conn: "asyncpg.Connection[asyncpg.Record]") -> Balances:
    """Every stored balance is the sum of its account's entries, none is negative, and all of
    them add up to the money that came in less the money that went out. Returns the balances.
    Read in one snapshot: the service may be committing while this looks."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        stored = {
            r["id"]: (r["available"], r["reserved"])
            for r in await conn.fetch("SELECT id, available, reserved FROM accounts")
        }
        derived = {
            r["account"]: (r["available"], r["reserved"]) for r in await conn.fetch(_DERIVED)
        }
        net_inflow = await conn.fetchval(_NET_INFLOW)
    differ = {a: (stored.get(a), derived.get(a)) for a in stored.keys() | derived.keys()
              if stored.get(a) != derived.get(a)}
    assert not differ, f"stored balances are not what the entries add up to: {differ}"
    assert all(a >= 0 and r >= 0 for a, r in stored.values())
    held = sum(a + r for a, r in stored.values())
    assert held == net_inflow, "money appeared or vanished in custody"
    return stored
