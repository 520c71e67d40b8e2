"""Live view: server-sent event streams of committed events, and the auction page."""
