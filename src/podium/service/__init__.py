"""Service functions: what the HTTP API and the CLI both call, scoped to an :class:`Actor`."""
