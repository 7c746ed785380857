"""Podium itself (section 8 of ``docs/runbook.md``): schema, SQLite settings, worker
processes, clocks and API keys. These are not any organization's objects, so only the local
operator and ``global`` admins see them."""

from __future__ import annotations

import shlex

from podium.api.auth import is_loopback
from podium.doctor.facts import Facts
from podium.doctor.model import Finding, Fix, Options, check

SECTION = 8
MAX_SKEW_SECONDS = 5.0


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
