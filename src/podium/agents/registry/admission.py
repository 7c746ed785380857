"""What an agent must pass to enter the registry, wherever it comes from (the API, the CLI,
``agents.yaml``): a well-formed registration, an ``a2a`` URL allowed by the URL guard (N1)
whose agent answers a card (and whose card names an allowed endpoint), a ``python`` target
that imports from an allowed module."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NoReturn, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from podium.agents.base import AgentError
from podium.agents.python import load_callable
from podium.domain.outcomes import ErrorCode
from podium.errors import InvalidInput, Issue
from podium.net.urlguard import UrlGuard
from podium.settings import DEFAULT_PYTHON_AGENT_MODULES, Settings

T = TypeVar("T")
SLUG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
# no spaces or control characters (nothing a database text column refuses, such as NUL)
URL_PATTERN = r"^[^\x00-\x20\x7f]+$"
TARGET_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*$"
AgentUrl = Annotated[str, Field(max_length=2000, pattern=URL_PATTERN)]
Target = Annotated[str, Field(max_length=300, pattern=TARGET_PATTERN)]
DEFAULT_PYTHON_MODULES = DEFAULT_PYTHON_AGENT_MODULES

CardFetcher = Callable[[str, UrlGuard], Awaitable[dict[str, Any]]]
"""``(url, guard) -> normalized card``; raises :class:`AgentError`; connects through guard."""


class AgentRegistration(BaseModel):
    """One agent to register (``POST /api/admin/agents``, an ``agents.yaml`` entry): an
    ``a2a`` agent gives ``url``, a ``python`` agent ``target`` (``module:function``); ``kind``
    may be left out and follows from which is given."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    slug: str = Field(pattern=SLUG_PATTERN)
    kind: Literal["a2a", "python"] | None = None
    url: AgentUrl | None = None
    target: Target | None = None
    active: bool = True
    concurrencyLimit: int | None = Field(default=None, ge=1, le=10_000)
    timeoutSeconds: float | None = Field(default=None, gt=0, le=86_400)

    def issues(self, path: str = "") -> list[Issue]:
        """Problems with the combination of fields (``kind`` against ``url``/``target``)."""
        at = f"{path}." if path else ""
        found = []
        if self.resolved_kind == "a2a":
            if self.url is None:
                found.append(Issue(f"{at}url", "an a2a agent needs the url of its A2A endpoint"))
            if self.target is not None:
                found.append(Issue(f"{at}target", "an a2a agent has no target"))
        else:
            if self.target is None:
                found.append(
                    Issue(f"{at}target", "a python agent needs a target (module:function)")
                )
            if self.url is not None:
                found.append(Issue(f"{at}url", "a python agent has no url"))
        return found

    @property
    def resolved_kind(self) -> str:
        return self.kind or ("a2a" if self.url is not None else "python")


class AgentCardUnavailable(InvalidInput):
    """The agent card could not be fetched (the agent is down, or serves no valid card).
    A 422 rather than a 502, so that the answer says why (5xx answers are generic)."""

    code = "agent_card_unavailable"

    def __init__(self, message: str, *, field_name: str, error: AgentError) -> None:
        super().__init__(message, [Issue(field_name, error.message)])
        self.details.update(errorCode=error.code, errorDetails=error.details)


DEFAULT_CARD_TIMEOUT_SECONDS = 5.0
DEFAULT_CARD_CONCURRENCY = 4


async def fetch_card(url: str, guard: UrlGuard) -> dict[str, Any]:
    """The normalized card of the A2A agent at ``url``, fetched through ``guard``."""
    from podium.agents.a2a.card import fetch_card as fetch  # loads the A2A SDK on demand
    from podium.agents.a2a.transport import HttpOptions

    return await fetch(url, http=HttpOptions(transport=guard.transport()))


@dataclass(frozen=True)
class AgentChecks:
    """How registrations are checked: outbound URLs (``url_guard``), how cards are fetched,
    and which modules python agents may come from (``python_modules``, module prefixes; None
    admits any module, for trusted callers: the local CLI and ``agents.yaml``)."""

    url_guard: UrlGuard
    fetch_card: CardFetcher = fetch_card
    python_modules: tuple[str, ...] | None = DEFAULT_PYTHON_MODULES
    card_timeout: float = DEFAULT_CARD_TIMEOUT_SECONDS
    card_concurrency: int = DEFAULT_CARD_CONCURRENCY

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, trusted: bool) -> AgentChecks:
        """The URL guard of the environment (:meth:`UrlGuard.from_env`); unless ``trusted``,
        python modules from ``PODIUM_PYTHON_AGENT_MODULES`` (comma-separated prefixes,
        default ``podium.agents.demo``): a python agent runs code inside Podium, so API
        callers may only name modules the operator allowed. Fetching a card takes at most
        ``PODIUM_AGENT_CARD_TIMEOUT_SECONDS`` (default 5); an organization has at most
        ``PODIUM_AGENT_CARD_CONCURRENCY`` (default 4) fetches in flight through the API."""
        settings = Settings.from_env(environ)
        modules = None if trusted else settings.python_agent_modules
        return cls(
            url_guard=UrlGuard.from_settings(settings),
            python_modules=modules,
            card_timeout=settings.agent_card_timeout_seconds,
            card_concurrency=settings.agent_card_concurrency,
        )

    def check_target(self, target: str, *, field_name: str = "target") -> None:
        """:class:`InvalidInput` unless ``target`` imports and, for untrusted callers, names
        a public function defined in an allowed module (``module:function``, no dotted
        path: ``allowed:os.system`` would reach anything the module imported)."""
        module, _, attr = target.partition(":")
        modules = self.python_modules
        if modules is not None:
            if not _within(module, modules):
                self._refuse(
                    field_name,
                    f"module {module!r} is not among the modules python "
                    f"agents may come from ({', '.join(modules) or 'none'}; see "
                    "PODIUM_PYTHON_AGENT_MODULES)",
                )
            if "." in attr or attr.startswith("_"):
                self._refuse(field_name, f"{attr!r} must be the name of a public function")
        try:
            fn = load_callable(target)
        except AgentError as exc:
            raise InvalidInput(
                "python agent cannot be loaded", [Issue(field_name, exc.message)]
            ) from exc
        defined_in = getattr(fn, "__module__", None) or ""
        if modules is not None and not _within(defined_in, modules):
            self._refuse(
                field_name, f"{target!r} is defined in {defined_in!r}, not in an allowed module"
            )

    @staticmethod
    def _refuse(field_name: str, message: str) -> NoReturn:
        raise InvalidInput("python agent not allowed", [Issue(field_name, message)])

    def card_for(self, url: str, *, field_name: str = "url") -> dict[str, Any]:
        """Check ``url`` (N1), fetch its card, and check the endpoint the card names.
        :class:`~podium.net.urlguard.UrlNotAllowed` or :class:`AgentCardUnavailable`."""
        self.url_guard.check_url(url, field_name=field_name)
        try:
            card = run_coroutine(self._fetch_in_time(url))
        except AgentError as exc:
            raise AgentCardUnavailable(
                f"could not fetch the agent card of {url}: {exc.message}",
                field_name=field_name,
                error=exc,
            ) from exc
        endpoint = card.get("url")
        if isinstance(endpoint, str) and endpoint:
            self.url_guard.check_url(endpoint, field_name=f"{field_name} (card endpoint)")
        return card

    async def _fetch_in_time(self, url: str) -> dict[str, Any]:
        """The card, or ``agent_timeout`` after ``card_timeout`` seconds: an agent that
        accepts the connection and never answers cannot hold a registration (T1)."""
        try:
            async with asyncio.timeout(self.card_timeout):
                return await self.fetch_card(url, self.url_guard)
        except TimeoutError:
            raise AgentError(
                ErrorCode.AGENT_TIMEOUT,
                f"no agent card from {url} within {self.card_timeout:g} s "
                "(PODIUM_AGENT_CARD_TIMEOUT_SECONDS)",
            ) from None


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def run_coroutine(work: Awaitable[T]) -> T:
    """Run ``work`` to completion from synchronous code; in a helper thread when this
    thread already runs an event loop."""

    async def wrapper() -> T:
        return await work

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(wrapper())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, wrapper()).result()
