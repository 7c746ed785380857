"""Configuration: one validated object, read from environment variables.

| variable | default | meaning |
|---|---|---|
| ``DATABASE_URL`` | ``sqlite:///.podium/podium.db`` | SQLite file or ``postgresql://`` URL |
| ``PODIUM_ORG`` | ``default`` | organization of runs launched from the local CLI |
| ``PODIUM_WORKER_CONCURRENCY`` | ``32`` | steps one worker process runs at once |
| ``PODIUM_LEASE_SECONDS`` | ``30`` | how long a claim lasts without a heartbeat |
| ``PODIUM_HEARTBEAT_SECONDS`` | lease / 3 | how often a worker renews its leases |
| ``PODIUM_SWEEP_SECONDS`` | ``5`` | how often expired leases and deadlines are checked |
| ``PODIUM_POLL_SECONDS`` | ``1`` | longest idle wait before a worker looks for work again |
| ``PODIUM_MAX_RECOVERIES`` | ``5`` | crash recoveries of one step before ``worker_lost`` |
| ``PODIUM_SQLITE_SYNCHRONOUS`` | ``NORMAL`` | SQLite ``synchronous`` (``FULL``: power-loss safe) |
| ``PODIUM_HOST`` | ``127.0.0.1`` | address ``podium serve`` listens on |
| ``PODIUM_PORT`` | ``8080`` | port ``podium serve`` listens on |
| ``PODIUM_REQUIRE_KEYS`` | off on loopback | require API keys (always on other interfaces) |
| ``PODIUM_MAX_BODY_BYTES`` | ``1048576`` | larger request bodies get 413 |
| ``PODIUM_RATE_LIMIT`` | ``1200`` | requests per minute per API key (per client without keys) |
| ``PODIUM_KEEPALIVE_SECONDS`` | ``15`` | idle time before a stream sends a keepalive |
| ``PODIUM_SESSION_SECRET`` | random | signs dashboard sessions (same on every API instance) |
| ``PODIUM_URL`` / ``PODIUM_API_KEY`` | — | the CLI talks to this server with this key |

Read where they are used (``podium.agents``):

| variable | default | meaning |
|---|---|---|
| ``PODIUM_AGENTS_FILE`` | — | ``agents.yaml`` loaded into the registry at start |
| ``PODIUM_ROUTING_POLICY`` | — | routing policy file loaded at start |
| ``PODIUM_AGENT_URL_ALLOWLIST`` | — | CIDRs, addresses, ``loopback``, ``private`` agents may use |
| ``PODIUM_ALLOW_PRIVATE_AGENT_URLS`` | off | admit private addresses (not link-local) |
| ``PODIUM_PYTHON_AGENT_MODULES`` | ``podium.agents.demo`` | modules API callers may register |
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from podium.errors import ConfigurationError

DEFAULT_DATABASE_URL = "sqlite:///.podium/podium.db"


class Settings(BaseModel):
    """Everything a Podium process can be configured with."""

    model_config = ConfigDict(frozen=True)

    database_url: str = DEFAULT_DATABASE_URL
    organization: str = Field(default="default", pattern=r"^[a-z0-9][a-z0-9-]*$")
    worker_concurrency: int = Field(default=32, ge=1, le=10_000)
    lease_seconds: float = Field(default=30.0, gt=0)
    heartbeat_seconds: float | None = Field(default=None, gt=0)
    sweep_seconds: float = Field(default=5.0, gt=0)
    poll_seconds: float = Field(default=1.0, gt=0)
    max_recoveries: int = Field(default=5, ge=0)
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    require_keys: bool | None = None  # None: required unless listening on loopback
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    rate_limit: int = Field(default=1200, ge=1)  # requests per minute per key
    keepalive_seconds: float = Field(default=15.0, gt=0, le=15.0)
    session_secret: str | None = Field(default=None, min_length=16)

    @model_validator(mode="after")
    def _heartbeat_inside_lease(self) -> Settings:
        if self.heartbeat_seconds is not None and self.heartbeat_seconds >= self.lease_seconds:
            raise ValueError("PODIUM_HEARTBEAT_SECONDS must be shorter than PODIUM_LEASE_SECONDS")
        return self

    @property
    def heartbeat_interval(self) -> float:
        return self.heartbeat_seconds or self.lease_seconds / 3

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read the variables in the table above; raise one clear error naming a bad one."""
        env = os.environ if environ is None else environ
        names = {
            "database_url": "DATABASE_URL",
            "organization": "PODIUM_ORG",
            "worker_concurrency": "PODIUM_WORKER_CONCURRENCY",
            "lease_seconds": "PODIUM_LEASE_SECONDS",
            "heartbeat_seconds": "PODIUM_HEARTBEAT_SECONDS",
            "sweep_seconds": "PODIUM_SWEEP_SECONDS",
            "poll_seconds": "PODIUM_POLL_SECONDS",
            "max_recoveries": "PODIUM_MAX_RECOVERIES",
            "host": "PODIUM_HOST",
            "port": "PODIUM_PORT",
            "require_keys": "PODIUM_REQUIRE_KEYS",
            "max_body_bytes": "PODIUM_MAX_BODY_BYTES",
            "rate_limit": "PODIUM_RATE_LIMIT",
            "keepalive_seconds": "PODIUM_KEEPALIVE_SECONDS",
            "session_secret": "PODIUM_SESSION_SECRET",
        }
        values: dict[str, object] = {k: env[v] for k, v in names.items() if env.get(v)}
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = str(first["loc"][0]) if first["loc"] else ""
            name = names.get(field, field)
            raise ConfigurationError(f"{name}: {first['msg']}") from exc
