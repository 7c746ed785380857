"""The HTTP API (FastAPI): app factory, routers by resource, auth, errors."""
