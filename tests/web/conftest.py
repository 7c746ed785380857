"""Fixtures for dashboard tests: the API fixtures (both databases, keys, a finisher)."""

from tests.api.conftest import acme, client, finish, globex, make_key, settings, store

__all__ = ["acme", "client", "finish", "globex", "make_key", "settings", "store"]
