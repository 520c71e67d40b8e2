"""Webhook delivery from the event outbox: Standard Webhooks signatures, at least once."""
