"""The seam around one step attempt: what an attempt produces, and the ports it is given.

The executor (:mod:`podium.engine.executor`) receives a :class:`StepPorts` from the worker,
as it receives ``save_runtime``: everything outside the step that an attempt may touch
(durable runtime notes, progress, a step cache, metrics) comes through it, so the executor
never imports storage. Each port is optional; an attempt without ports runs the step's kind
and nothing else.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from podium.domain.outcomes import StepError
from podium.domain.payloads import PayloadLimits

if TYPE_CHECKING:  # the executor never imports storage; it only reads the record
    from podium.storage.records import ClaimedStep

SaveRuntime = Callable[[str, Any], Awaitable[None]]
ReportProgress = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Outcome:
    """What one attempt produced: an output, or an error (never both)."""

    output: Any = None
    error: StepError | None = None
    resolved_input: Any = None
    # the step cache's entry write (spec section 9), done by the settlement in the
    # completion's transaction; opaque here (None: the step is not cached)
    cache: Any = None

    @property
    def ok(self) -> bool:
        return self.error is None


class StepCache(Protocol):
    """A store of earlier successful outcomes (the step cache of spec section 9).

    ``lookup`` runs after the input is resolved and before the step's kind runs: an outcome
    it returns is the attempt's outcome (kind ``cached``) and nothing is called. ``store``
    runs after a successful, validated outcome. A port that raises does not fail the step:
    the error is logged and the attempt goes on as if there were no cache.
    """

    async def lookup(self, step: ClaimedStep, resolved_input: Any) -> Outcome | None: ...

    async def store(self, step: ClaimedStep, resolved_input: Any, outcome: Outcome) -> None: ...


class AttemptObserver(Protocol):
    """Told about every attempt once it has an outcome (metrics hook in here).

    ``kind`` is the kind that produced the outcome (``agent``, ``cached``, ...), ``seconds``
    the attempt's wall time. Called on the worker's event loop; must not block. An observer
    that raises is logged and ignored.
    """

    def attempt_finished(
        self, step: ClaimedStep, kind: str, outcome: Outcome, seconds: float
    ) -> None: ...


@dataclass(frozen=True)
class StepPorts:
    """Everything an attempt may use besides the step itself and the agents."""

    save_runtime: SaveRuntime | None = None
    report_progress: ReportProgress | None = None
    cache: StepCache | None = None
    # the step cache of spec section 9 (podium.engine.cache.StepCache): asked by the agent
    # kind once the agent is known, since its fingerprint includes the agent's version
    step_cache: Any = None
    observers: Sequence[AttemptObserver] = field(default_factory=tuple)
    limits: PayloadLimits = field(default_factory=PayloadLimits)
