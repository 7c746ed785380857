"""What a live stream says, shared by SSE and WebSocket: each event as its
:class:`~podium.service.views.EventView`, and one final message when the run has ended."""

from __future__ import annotations

from typing import Any, Literal

from podium.events.follower import StreamEnd
from podium.service.views import View

COMPLETE: Literal["complete"] = "complete"
ERROR: Literal["error"] = "error"


class StreamEndView(View):
    """The last message of a stream: ``complete`` when the run completed, ``error`` when it
    failed or was aborted (with the run's error, if it recorded one)."""

    type: Literal["complete", "error"]
    runId: str
    status: str
    lastSequence: int
    outputs: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    @classmethod
    def of(cls, end: StreamEnd) -> StreamEndView:
        run = end.run
        if run.status == "completed":
            return cls(
                type=COMPLETE,
                runId=run.id,
                status=run.status,
                lastSequence=run.last_sequence,
                outputs=run.outputs,
            )
        return cls(
            type=ERROR,
            runId=run.id,
            status=run.status,
            lastSequence=run.last_sequence,
            error=run.error,
        )
