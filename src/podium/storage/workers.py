"""Worker registration: the row each worker process keeps while it runs.

``heartbeat_at`` is renewed with its leases (:func:`podium.storage.claims.renew_leases`);
``stopped_at`` is set when it stops gracefully; ``version`` is the Podium release the process
runs. Operators (and ``podium doctor``) read the rows to see who is alive, and on what.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime

import sqlalchemy as sa

from podium import __version__
from podium.storage.tables import workers


def register(
    conn: sa.Connection,
    worker_id: str,
    concurrency: int,
    *,
    now: datetime,
    version: str = __version__,
) -> None:
    """Record a worker of this host and process, running Podium ``version`` (this
    process's by default), alive as of ``now``."""
    conn.execute(
        workers.insert().values(
            id=worker_id,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            concurrency=concurrency,
            started_at=now,
            heartbeat_at=now,
            version=version,
        )
    )


def stop(conn: sa.Connection, worker_id: str, *, now: datetime) -> None:
    """Mark a worker as stopped (it will renew nothing more)."""
    conn.execute(workers.update().where(workers.c.id == worker_id).values(stopped_at=now))
