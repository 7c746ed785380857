"""What ``podium serve`` and ``podium worker`` set up for webhooks at start: the global
endpoint from ``ORCHESTRATION_PROGRESS_WEBHOOK_URL``/``_SECRET`` and the endpoints of a
``webhooks.yaml`` file (``PODIUM_WEBHOOKS_FILE`` or ``--webhooks``), like ``agents.yaml``::

    organizations:
      acme:
        - id: ops-alerts                 # stable: loading the file again updates it
          url: https://hooks.example.com/podium
          secretEnv: ACME_WEBHOOK_SECRET  # or secret: whsec_...
          eventTypes: [orchestration.run.*, orchestration.step.failed]
          definitions: [nightly-report]   # optional
          rateLimit: 10                   # optional, requests per second
          enabled: true

Every URL passes the URL guard (``PODIUM_WEBHOOK_URL_ALLOWLIST``) before anything is written.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from podium.errors import InvalidInput, Issue, NotFound
from podium.events.webhooks.config import WebhookSettings
from podium.events.webhooks.signing import check_secret
from podium.net.urlguard import UrlGuard
from podium.service.webhooks import EndpointRegistration
from podium.settings import environment
from podium.storage.webhooks import WebhookStore

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 1_048_576


class FileEndpoint(EndpointRegistration):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=36, pattern=r"^[A-Za-z0-9_-]+$")
    secretEnv: str | None = Field(default=None, max_length=200)


class WebhooksFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    organizations: dict[str, list[FileEndpoint]] = Field(default_factory=dict)


def parse_webhooks_file(text: str, source: str = "webhooks.yaml") -> WebhooksFile:
    if len(text.encode()) > MAX_FILE_BYTES:
        raise InvalidInput(f"{source} is larger than {MAX_FILE_BYTES} bytes")
    try:
        data: Any = yaml.safe_load(text) or {}
        return WebhooksFile.model_validate(data)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{source} is not valid YAML: {exc}") from exc
    except ValidationError as exc:
        issues = [Issue(".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()]
        raise InvalidInput(f"invalid webhooks file {source}", issues) from exc


def load_webhooks_file(
    path: str | Path,
    store: WebhookStore,
    guard: UrlGuard,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Create or update the file's endpoints; returns how many. All problems at once."""
    env = environment() if environ is None else environ
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read webhooks file {path}: {exc}") from exc
    parsed = parse_webhooks_file(text, str(path))
    issues: list[Issue] = []
    planned: list[tuple[str, FileEndpoint, str]] = []
    for org, entries in parsed.organizations.items():
        for i, entry in enumerate(entries):
            where = f"organizations.{org}[{i}]"
            try:
                guard.check_url(entry.url, field_name=f"{where}.url")
            except InvalidInput as exc:
                issues += exc.issues
            secret = entry.secret or (env.get(entry.secretEnv) if entry.secretEnv else None)
            if not secret:
                issues.append(Issue(f"{where}.secret", "give secret or secretEnv"))
                continue
            try:
                planned.append((org, entry, check_secret(secret, f"{where}.secret")))
            except InvalidInput as exc:
                issues += exc.issues
    if issues:
        raise InvalidInput(f"invalid webhooks file {path}", issues)
    for org, entry, secret in planned:
        fields: dict[str, Any] = {
            "url": entry.url,
            "description": entry.description,
            "event_types": entry.eventTypes or [],
            "definitions": entry.definitions,
            "enabled": entry.enabled,
            "rate_limit": entry.rateLimit,
        }
        try:
            current = store.get_endpoint(entry.id, org)
        except NotFound:
            store.create_endpoint(organization=org, secret=secret, endpoint_id=entry.id, **fields)
            continue
        store.update_endpoint(current.id, org, **fields)
        if current.secret != secret:
            store.rotate_secret(
                current.id, org, secret, WebhookSettings.from_env(env).rotation_overlap_seconds
            )
    log.info("webhooks file %s: %d endpoint(s)", path, len(planned))
    return len(planned)


def prepare_webhooks(
    store: WebhookStore,
    settings: WebhookSettings | None = None,
    *,
    webhooks_file: str | None = None,
    guard: UrlGuard | None = None,
) -> WebhookSettings:
    """Sync the global endpoint with the environment and load the webhooks file, if any."""
    settings = settings or WebhookSettings.from_env()
    guard = guard or UrlGuard.from_env(subject="WEBHOOK")
    if settings.global_url:
        guard.check_url(settings.global_url, field_name="ORCHESTRATION_PROGRESS_WEBHOOK_URL")
        check_secret(settings.global_secret or "", "ORCHESTRATION_PROGRESS_WEBHOOK_SECRET")
    store.sync_global(settings.global_url, settings.global_secret)
    path = webhooks_file or settings.file
    if path:
        load_webhooks_file(path, store, guard)
    return settings
