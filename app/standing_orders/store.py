"""SQL for reading standing orders. Their rows are written by the journal writer, in the same
transaction as the command that changed them."""

import asyncpg
from asyncpg import Record


class StandingOrderStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def page(self, lender_id: str | None, before_seq: int | None, limit: int) -> list[Record]:
        """Orders not deleted, newest first; all lenders' when `lender_id` is None."""
        return await self.pool.fetch(
            """SELECT * FROM standing_orders
               WHERE NOT deleted AND ($1::text IS NULL OR lender_id = $1)
                 AND ($2::bigint IS NULL OR seq < $2)
               ORDER BY seq DESC LIMIT $3""",
            lender_id, before_seq, limit,
        )

