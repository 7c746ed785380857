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
