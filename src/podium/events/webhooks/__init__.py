"""Webhook delivery: Standard Webhooks signing, the HTTP client, and the dispatcher that
sends the outbox (:mod:`podium.storage.outbox`)."""
