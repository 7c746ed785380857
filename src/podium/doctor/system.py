"""Podium itself (section 8 of ``docs/runbook.md``): schema, SQLite settings, worker
processes and versions, clocks and API keys. These are not any organization's objects, so
only the local operator and ``global`` admins see them."""

from __future__ import annotations

import shlex
from collections import defaultdict

import semantic_version

from podium import __version__
from podium.api.auth import is_loopback
from podium.doctor.facts import Facts
from podium.doctor.model import Finding, Fix, Options, check
from podium.storage.records import WorkerRecord

SECTION = 8
MAX_SKEW_SECONDS = 5.0
# a worker row without a version was registered before migration 0009, by an older Podium
UNRECORDED = "unrecorded"


@check("podium.migrations", SECTION)
def migrations(facts: Facts, options: Options) -> list[Finding]:
    """The schema is not at the revision this Podium needs."""
    current, head = facts.revisions
    if not options.system or current == head:
        return []
    return [
        Finding(
            check="podium.migrations",
            section=SECTION,
            severity="error",
            summary=f"the database schema is at {current or 'no revision'}, not {head}",
            evidence={"current": current, "head": head},
            fix=Fix(command="podium migrate", api="GET /readyz (503 until migrated)"),
        )
    ]


@check("podium.sqlite-settings", SECTION)
def sqlite_settings(facts: Facts, options: Options) -> list[Finding]:
    """A SQLite database not in WAL mode, or connections without a ``busy_timeout``
    (``PODIUM_SQLITE_BUSY_TIMEOUT_MS=0``): one writer's lock fails the others at once."""
    if not options.system or not facts.is_sqlite:
        return []
    pragmas = dict(facts.sqlite_pragmas)
    file = pragmas.pop("file", None)
    problems: list[str] = []
    fixes: list[str] = []
    if pragmas.get("journal_mode") != "wal":
        problems.append(f"journal_mode is {pragmas.get('journal_mode')}, not wal")
        target = shlex.quote(str(file)) if file else "FILE"
        fixes.append(
            "stop every Podium process on the file, then "
            f"sqlite3 {target} 'PRAGMA journal_mode=WAL'"
        )
    if not pragmas.get("busy_timeout"):
        problems.append("busy_timeout is 0")
        fixes.append(
            "unset PODIUM_SQLITE_BUSY_TIMEOUT_MS (30000 by default) or set it above 0, "
            "and restart the Podium processes"
        )
    if not problems:
        return []
    return [
        Finding(
            check="podium.sqlite-settings",
            section=SECTION,
            severity="error",
            summary="SQLite: " + "; ".join(problems),
            evidence={
                "pragmas": pragmas,
                "file": file,
                "setting": {
                    "PODIUM_SQLITE_BUSY_TIMEOUT_MS": options.settings.sqlite_busy_timeout_ms
                },
            },
            fix=Fix(command="; ".join(fixes)),
        )
    ]


@check("podium.sqlite-processes", SECTION)
def sqlite_processes(facts: Facts, options: Options) -> list[Finding]:
    """Several live worker processes on one SQLite file: they serialise on its one lock."""
    if not options.system or not facts.is_sqlite:
        return []
    processes = {(w.hostname, w.pid) for w in facts.workers}
    if len(processes) < 2:
        return []
    return [
        Finding(
            check="podium.sqlite-processes",
            section=SECTION,
            severity="warning",
            summary=f"{len(processes)} worker processes share one SQLite file",
            evidence={
                "workers": {w.id: f"{w.hostname}:{w.pid}" for w in facts.workers},
                "processes": len(processes),
            },
            fix=Fix(
                command="run one `podium worker` (raise PODIUM_WORKER_CONCURRENCY instead), "
                "or move to PostgreSQL (DATABASE_URL=postgresql://...)"
            ),
        )
    ]


@check("podium.clock-skew", SECTION)
def clock_skew(facts: Facts, options: Options) -> list[Finding]:
    """Clocks that disagree with the database's: this process's, and live workers' (a
    heartbeat from the future means a worker's clock is ahead)."""
    db_now = facts.database_now
    if not options.system or db_now is None:
        return []
    skews: dict[str, float] = {}
    own = (options.now - db_now).total_seconds()
    if abs(own) > MAX_SKEW_SECONDS:
        skews["doctor"] = round(own, 1)
    for worker in facts.workers:
        ahead = (worker.heartbeat_at - db_now).total_seconds()
        if ahead > MAX_SKEW_SECONDS:
            skews[worker.id] = round(ahead, 1)
    if not skews:
        return []
    return [
        Finding(
            check="podium.clock-skew",
            section=SECTION,
            severity="warning",
            summary=f"{len(skews)} clock(s) differ from the database's by more than "
            f"{MAX_SKEW_SECONDS:g}s (leases and retries depend on them)",
            evidence={"databaseNow": db_now.isoformat(), "skewSeconds": skews},
            fix=Fix(command="enable NTP on the hosts (timedatectl set-ntp true)"),
        )
    ]


@check("podium.keys-absent", SECTION)
def keys_absent(facts: Facts, options: Options) -> list[Finding]:
    """A server configured for a non-loopback address with no usable API key: every
    request would be refused."""
    host = options.settings.host
    if not options.system or is_loopback(host):
        return []
    usable = [k for k in facts.api_keys if k.revoked_at is None]
    if usable:
        return []
    return [
        Finding(
            check="podium.keys-absent",
            section=SECTION,
            severity="error",
            summary=f"PODIUM_HOST={host} is not loopback and there is no API key",
            evidence={"setting": {"PODIUM_HOST": host}, "usableKeys": 0},
            fix=Fix(command="podium keys create --org ORG --role admin --name NAME"),
        )
    ]


def _release(version: str) -> tuple[int, semantic_version.Version | None, str]:
    """Sort key: unrecorded first, then versions that do not parse, then by semver."""
    if version == UNRECORDED:
        return (0, None, version)
    try:
        return (2, semantic_version.Version.coerce(version), version)
    except ValueError:
        return (1, None, version)


@check("podium.worker-versions", SECTION)
def worker_versions(facts: Facts, options: Options) -> list[Finding]:
    """Live workers running different Podium releases (a rollout left half done, or an old
    worker nobody restarted): they may claim the same steps and treat them differently."""
    if not options.system:
        return []
    by_version: dict[str, list[WorkerRecord]] = defaultdict(list)
    for worker in facts.workers:
        by_version[worker.version or UNRECORDED].append(worker)
    if len(by_version) < 2:
        return []
    ordered = sorted(by_version, key=_release)
    newest = ordered[-1]
    older = [w for v in ordered[:-1] for w in by_version[v]]
    where = ", ".join(sorted({f"{w.hostname}:{w.pid}" for w in older}))
    return [
        Finding(
            check="podium.worker-versions",
            section=SECTION,
            severity="warning",
            summary=f"live workers run {len(by_version)} Podium versions "
            f"({', '.join(ordered)}); {len(older)} older than {newest}",
            evidence={
                "versions": {v: sorted(w.id for w in by_version[v]) for v in ordered},
                "newest": newest,
                "olderWorkers": {w.id: f"{w.hostname}:{w.pid}" for w in older},
                "doctorVersion": __version__,
            },
            fix=Fix(
                command=f"roll out Podium {newest} everywhere: upgrade and restart the older "
                f"workers ({where}): SIGTERM lets each drain, then `podium worker`"
            ),
        )
    ]
