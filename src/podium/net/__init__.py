"""Neutral network services every layer may use (the URL guard)."""
