"""The Podium client: one :class:`~podium.client.backend.Backend` port, a local (database)
and a remote (HTTP API) implementation. Scripts may import it."""
