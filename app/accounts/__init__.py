"""Custody accounts: deposits, withdrawals, balances and ledger entries (docs/money.md)."""
