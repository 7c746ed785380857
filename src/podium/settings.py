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
| ``PODIUM_MAX_CHILD_DEPTH`` | ``8`` | deepest nesting of child orchestrations |
| ``PODIUM_SQLITE_SYNCHRONOUS`` | ``NORMAL`` | SQLite ``synchronous`` (``FULL``: power-loss safe) |
| ``PODIUM_SQLITE_BUSY_TIMEOUT_MS`` | ``30000`` | how long a SQLite writer waits for the lock |
| ``PODIUM_DB_CONNECT_TIMEOUT`` | ``5`` | seconds a PostgreSQL connection attempt may take |
| ``PODIUM_HOST`` | ``127.0.0.1`` | address ``podium serve`` listens on |
| ``PODIUM_PORT`` | ``8080`` | port ``podium serve`` listens on |
| ``PODIUM_REQUIRE_KEYS`` | off on loopback | require API keys (always on other interfaces) |
| ``PODIUM_MAX_BODY_BYTES`` | ``1048576`` | larger request bodies get 413 |
| ``PODIUM_RATE_LIMIT`` | ``1200`` | requests per minute per API key (per client without keys) |
| ``PODIUM_KEEPALIVE_SECONDS`` | ``15`` | idle time before a stream sends a keepalive |
| ``PODIUM_MAX_NESTING_DEPTH`` | ``64`` | deepest JSON value accepted anywhere (422 beyond) |
| ``PODIUM_MAX_OUTPUT_BYTES`` | ``4194304`` | largest agent output (UTF-8 JSON bytes) |
| ``PODIUM_SHUTDOWN_GRACE_SECONDS`` | ``10`` | on stop, time for steps in flight; then given back |
| ``PODIUM_METRICS_MAX_SERIES`` | ``1000`` | distinct label values per kind, then ``other`` |
| ``PODIUM_SESSION_SECRET`` | random | signs dashboard sessions (same on every API instance) |
| ``PODIUM_URL`` / ``PODIUM_API_KEY`` | — | the CLI talks to this server with this key |
| ``PODIUM_AGENTS_FILE`` | — | ``agents.yaml`` loaded into the registry at start |
| ``PODIUM_ROUTING_POLICY`` | — | routing policy file loaded at start |
| ``PODIUM_AGENT_URL_ALLOWLIST`` | — | CIDRs, addresses, ``loopback``, ``private`` agents may use |
| ``PODIUM_ALLOW_PRIVATE_AGENT_URLS`` | off | admit private addresses (not link-local) |
| ``PODIUM_WEBHOOK_URL_ALLOWLIST`` | — | the same for webhook URLs |
| ``PODIUM_ALLOW_PRIVATE_WEBHOOK_URLS`` | off | the same for webhook URLs |
| ``PODIUM_PYTHON_AGENT_MODULES`` | ``podium.agents.demo`` | modules API callers may register |
| ``PODIUM_AGENT_CARD_TIMEOUT_SECONDS`` | ``5`` | longest Agent Card fetch at registration |
| ``PODIUM_AGENT_CARD_CONCURRENCY`` | ``4`` | card fetches one organization may have in flight |
| ``PODIUM_LOG_FORMAT`` | ``text`` | ``json``: one JSON object per log line |
| ``PODIUM_DEBUG`` | off | ``1``: the CLI shows the traceback of an unexpected error |

This module is the only one that reads the environment (the CLI's typer options name their
variable with ``envvar=``; rich reads ``COLUMNS``).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from podium.domain.limits import READABLE_DEPTH
from podium.errors import ConfigurationError

DEFAULT_DATABASE_URL = "sqlite:///.podium/podium.db"
DEFAULT_PYTHON_AGENT_MODULES = ("podium.agents.demo",)
OutboundSubject = Literal["AGENT", "WEBHOOK"]


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
    max_nesting_depth: int = Field(default=64, ge=2, le=READABLE_DEPTH)
    max_output_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    max_child_depth: int = Field(default=8, ge=0, le=64)  # issue 11: child orchestrations
    db_connect_timeout: float = Field(default=5.0, ge=2, le=600)
    sqlite_busy_timeout_ms: int = Field(default=30_000, ge=0)
    agent_card_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    agent_card_concurrency: int = Field(default=4, ge=1, le=1000)
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "NORMAL"
    agents_file: str | None = None
    routing_policy: str | None = None
    python_agent_modules: tuple[str, ...] = DEFAULT_PYTHON_AGENT_MODULES
    allow_private_agent_urls: bool = False
    agent_url_allowlist: tuple[str, ...] = ()
    allow_private_webhook_urls: bool = False
    webhook_url_allowlist: tuple[str, ...] = ()
    log_format: Literal["text", "json"] = "text"
    metrics_max_series: int = Field(default=1000, ge=1, le=100_000)
    session_secret: str | None = Field(default=None, min_length=16)

    @field_validator(
        "python_agent_modules", "agent_url_allowlist", "webhook_url_allowlist", mode="before"
    )
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("sqlite_synchronous", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _heartbeat_inside_lease(self) -> Settings:
        if self.heartbeat_seconds is not None and self.heartbeat_seconds >= self.lease_seconds:
            raise ValueError("PODIUM_HEARTBEAT_SECONDS must be shorter than PODIUM_LEASE_SECONDS")
        return self

    @property
    def heartbeat_interval(self) -> float:
        return self.heartbeat_seconds or self.lease_seconds / 3

    def outbound_urls(self, subject: OutboundSubject) -> tuple[bool, tuple[str, ...]]:
        """``(allow_private, allowlist)`` of the URL guard for ``subject``'s calls."""
        if subject == "WEBHOOK":
            return self.allow_private_webhook_urls, self.webhook_url_allowlist
        return self.allow_private_agent_urls, self.agent_url_allowlist

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read the variables in the table above; raise one clear error naming a bad one."""
        env = os.environ if environ is None else environ
        names = ENV_NAMES
        values: dict[str, object] = {k: env[v] for k, v in names.items() if env.get(v)}
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = str(first["loc"][0]) if first["loc"] else ""
            name = names.get(field, field)
            raise ConfigurationError(f"{name}: {first['msg']}") from exc


def debug_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """``PODIUM_DEBUG=1``: let unexpected errors show their traceback. Read on its own, not
    through :class:`Settings`, because it must work when the rest of the configuration is
    invalid."""
    env = os.environ if environ is None else environ
    return env.get("PODIUM_DEBUG") == "1"


def environment() -> Mapping[str, str]:
    """The process environment, for the few readers that parse their own groups of
    variables (the webhook settings ``PODIUM_WEBHOOK_*``, the doctor's view of them): every
    read of the environment still goes through this module."""
    return os.environ


def fault_requested(point: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether a crash drill asked this process to die at ``point`` (``PODIUM_FAULT``; unset
    in every real deployment). Read on its own: it is a test hook, not configuration."""
    env = os.environ if environ is None else environ
    return env.get("PODIUM_FAULT") == point


def fault_point(point: str) -> None:
    """Kill this process with SIGKILL at ``point`` (nothing cleaned up) if a crash drill
    asked for it (:func:`fault_requested`); otherwise do nothing."""
    if fault_requested(point):
        os.kill(os.getpid(), signal.SIGKILL)


ENV_NAMES: dict[str, str] = {
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
    "sqlite_synchronous": "PODIUM_SQLITE_SYNCHRONOUS",
    "agents_file": "PODIUM_AGENTS_FILE",
    "routing_policy": "PODIUM_ROUTING_POLICY",
    "python_agent_modules": "PODIUM_PYTHON_AGENT_MODULES",
    "allow_private_agent_urls": "PODIUM_ALLOW_PRIVATE_AGENT_URLS",
    "agent_url_allowlist": "PODIUM_AGENT_URL_ALLOWLIST",
    "allow_private_webhook_urls": "PODIUM_ALLOW_PRIVATE_WEBHOOK_URLS",
    "webhook_url_allowlist": "PODIUM_WEBHOOK_URL_ALLOWLIST",
    "log_format": "PODIUM_LOG_FORMAT",
    "max_nesting_depth": "PODIUM_MAX_NESTING_DEPTH",
    "max_output_bytes": "PODIUM_MAX_OUTPUT_BYTES",
    "shutdown_grace_seconds": "PODIUM_SHUTDOWN_GRACE_SECONDS",
    "max_child_depth": "PODIUM_MAX_CHILD_DEPTH",
    "db_connect_timeout": "PODIUM_DB_CONNECT_TIMEOUT",
    "sqlite_busy_timeout_ms": "PODIUM_SQLITE_BUSY_TIMEOUT_MS",
    "agent_card_timeout_seconds": "PODIUM_AGENT_CARD_TIMEOUT_SECONDS",
    "agent_card_concurrency": "PODIUM_AGENT_CARD_CONCURRENCY",
    "metrics_max_series": "PODIUM_METRICS_MAX_SERIES",
    "session_secret": "PODIUM_SESSION_SECRET",
}
"""Each setting's environment variable."""
