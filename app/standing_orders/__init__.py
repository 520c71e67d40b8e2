"""Standing orders: lenders' automatic bidding (docs/automation.md)."""
