"""The journal: what the engine decided, as Postgres rows, written in engine order.

- `entry`: the rows one action adds, and what a committed batch reports;
- `statements`: the SQL a batch runs;
- `writer`: the one writer and its group commit;
- `transaction`: its asyncpg path (a transaction when a batch does more than append);
- `lane`: the batch-of-bids statement on a non-blocking libpq connection.
"""

from app.journal.entry import BatchStats, Entry, Row
from app.journal.writer import JournalWriter

__all__ = ["BatchStats", "Entry", "JournalWriter", "Row"]
