"""The audit chain: every event's `hash` links it to the one before, so the record is provable."""
