"""The ``python`` agent kind: an in-process callable named ``module:function``.

The callable takes ``(input, context)`` (or just ``(input)``), may be sync or async, and
returns any JSON value, which becomes ``output`` of the normalized result. Sync callables run
in a thread so that they never block the worker's event loop.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import time
from collections.abc import Callable
from typing import Any

from podium.agents.base import AgentContext, AgentError, task_response
from podium.domain.outcomes import ErrorCode


def load_callable(target: str) -> Callable[..., Any]:
    """Import ``module:function`` (dotted attribute paths allowed after the colon)."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise AgentError(
            ErrorCode.AGENT_NOT_FOUND, f"python agent target {target!r} is not module:function"
        )
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise AgentError(
            ErrorCode.AGENT_NOT_FOUND, f"python agent {target!r} cannot be loaded: {exc}"
        ) from exc
    if not callable(obj):
        raise AgentError(ErrorCode.AGENT_NOT_FOUND, f"python agent {target!r} is not callable")
    return obj  # type: ignore[no-any-return]  # checked callable above


class PythonAgent:
    """An agent backed by a Python callable."""

    kind = "python"

    def __init__(self, slug: str, fn: Callable[..., Any], *, target: str | None = None) -> None:
        self.slug = slug
        self.target = target or f"{fn.__module__}:{fn.__qualname__}"
        self._fn = fn
        self._is_async = inspect.iscoroutinefunction(fn)
        try:
            self._takes_context = len(inspect.signature(fn).parameters) >= 2
        except (TypeError, ValueError):
            self._takes_context = True

    @classmethod
    def from_target(cls, slug: str, target: str) -> PythonAgent:
        return cls(slug, load_callable(target), target=target)

    async def invoke(self, input: Any, context: AgentContext) -> dict[str, Any]:
        args = (input, context) if self._takes_context else (input,)
        started = time.perf_counter()
        try:
            if self._is_async:
                output = await self._fn(*args)
            else:
                output = await asyncio.to_thread(self._fn, *args)
        except AgentError:
            raise
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise AgentError(
                ErrorCode.AGENT_EXECUTION_ERROR,
                f"{type(exc).__name__}: {exc}",
                details={"exception": type(exc).__name__},
            ) from exc
        return task_response(
            slug=self.slug, output=output, started=started, ended=time.perf_counter()
        )
