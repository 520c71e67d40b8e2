"""`loan-auction serve` with a benchmark-only change, for baselines. Never a way to run it.

    python bench/variant_serve.py journal-off serve --host 127.0.0.1 --port 8001

Variants (the rest of the command line goes to `loan-auction`):
- journal-off: the journal writer acknowledges entries without storing them (not durable);
  the baseline that shows what durability costs.
- chain-off: events are numbered and stored but not hashed (a constant hash); the baseline
  that shows what the audit chain costs.
"""

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import cli  # noqa: E402  (after the path fix, as a script)
from app.audit import chain  # noqa: E402
from app.journal import Entry, statements, transaction  # noqa: E402

Row = tuple[Any, ...]


_numbered = [0]


async def _store_nothing(
    self: transaction.PoolPath, entry: Entry, head: statements.Head | None
) -> statements.Head:
    """Number the events as the writer would (streams and webhooks read the seq), store none."""
    entry.events, _numbered[0], _ = _number_only(_numbered[0], chain.GENESIS, entry.events)
    return _numbered[0], chain.GENESIS


def _number_only(seq: int, head: str, rows: Iterable[Row]) -> tuple[list[Row], int, str]:
    numbered = []
    for row in rows:
        seq += 1
        numbered.append((seq, *row, chain.GENESIS))
    return numbered, seq, head


def main(argv: list[str]) -> None:
    variant, rest = argv[0], argv[1:]
    if variant == "journal-off":
        transaction.PoolPath.write = _store_nothing  # type: ignore[method-assign,assignment]
        os.environ["LOAN_AUCTION_JOURNAL_LANE"] = "false"  # every batch through `PoolPath.write`
    elif variant == "chain-off":
        chain.chain_rows = _number_only
    else:
        raise SystemExit(f"unknown variant {variant!r}: journal-off or chain-off")
    cli.main(rest)


if __name__ == "__main__":
    main(sys.argv[1:])
