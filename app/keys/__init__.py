"""API keys: minting, authentication with its caches, listing, revocation, expiry."""
