"""SQL for reading the ledger. Entries and balances are written by the journal writer."""

import asyncpg
from asyncpg import Record


class AccountStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def entries(self, account_id: str, after: int, limit: int) -> list[Record]:
        """An account's ledger entries, either side, oldest first, past the `after` cursor."""
        return await self.pool.fetch(
            """SELECT * FROM ledger_entries WHERE debit_account = $1 AND id > $2
               UNION ALL
               SELECT * FROM ledger_entries WHERE credit_account = $1 AND debit_account <> $1
                 AND id > $2
               ORDER BY id LIMIT $3""",
            account_id, after, limit,
        )
