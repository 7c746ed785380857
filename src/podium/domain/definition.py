"""The definition format (spec section 2): the models of a definition document.

A definition is a YAML/JSON document with ``metadata`` and ``orchestration``. The models below
mirror it field for field (names exactly as in the spec, camelCase or snake_case as written
there); unknown keys are rejected so typos are caught, and every model is frozen.

Parsing and validation are in :mod:`podium.domain.validation` (with the loader and size
limits in :mod:`podium.domain.loading`), launch parameters in :mod:`podium.domain.parameters`;
all are re-exported here.

Contract: a :class:`Definition` obtained from :func:`parse_definition` satisfies every rule of
spec section 2 (field types and ranges, unique step ids, existing dependencies, no cycle, agent
and orchestration steps name their target, templates read only declared parameters and
upstream steps, valid output-mapping selectors, size limits). Constructing the models directly
checks only per-field rules (types, ranges, patterns); use :func:`parse_definition` to get the
cross-field and cross-step checks.

Pure: no I/O. YAML is read with a safe loader that follows YAML 1.2 / JSON for scalars
(only ``true``/``false`` are booleans, dates stay strings) and rejects duplicate keys.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "DEFAULT_LIMITS",
    "CacheSettings",
    "CheckpointSpec",
    "Concurrency",
    "Decision",
    "Definition",
    "DefinitionLimits",
    "ErrorHandling",
    "Execution",
    "Metadata",
    "Orchestration",
    "OrchestrationTarget",
    "ParameterSpec",
    "ParameterType",
    "RetryPolicy",
    "StepCacheSettings",
    "StepSpec",
    "TimeoutDecision",
    "apply_parameters",
    "parse_definition",
    "semver_key",
]

ParameterType = Literal["string", "integer", "number", "boolean", "object", "array"]
Decision = Literal["continue", "retry", "abort"]
# what an expired checkpoint does: ``fail`` fails the step with ``checkpoint_expired``
TimeoutDecision = Literal["continue", "abort", "fail"]
StepType = Literal["agent", "orchestration"]

_NAME = re.compile(r"[a-z0-9-]+\Z")
_STEP_ID = re.compile(r"[a-z0-9_-]+\Z")
_PARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_PRERELEASE_ID = r"(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)"
_SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    rf"(?:-({_PRERELEASE_ID}(?:\.{_PRERELEASE_ID})*))?\Z"
)


def _invalid(message: str) -> PydanticCustomError:
    """A validation error whose message is exactly ``message`` (no "Value error," prefix)."""
    return PydanticCustomError("value_error", "{reason}", {"reason": message})


def semver_key(version: str) -> tuple[Any, ...]:
    """Sort key implementing semantic-version precedence (``1.0.0-rc.1 < 1.0.0 < 1.2.0``).

    Raises :class:`ValueError` if ``version`` is not ``MAJOR.MINOR.PATCH[-prerelease]``.
    """
    match = _SEMVER.match(version)
    if match is None:
        raise ValueError(f"not a semantic version: {version!r}")
    major, minor, patch, pre = match.groups()
    if pre is None:
        pre_key: tuple[Any, ...] = (1,)
    else:
        pre_key = (
            0,
            tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")),
        )
    return (int(major), int(minor), int(patch), pre_key)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


class Metadata(_Model):
    """``metadata``: ``name`` matches ``[a-z0-9-]+``; ``version`` is ``MAJOR.MINOR.PATCH`` with an
    optional ``-prerelease``; ``owner`` is the owning agent slug (informational)."""

    name: str
    displayName: str | None = None
    version: str
    description: str | None = None
    owner: str | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise _invalid(f"name {value!r} must match [a-z0-9-]+ (lowercase letters, digits, -)")
        return value

    @field_validator("version")
    @classmethod
    def _check_version(cls, value: str) -> str:
        if not _SEMVER.match(value):
            raise _invalid(
                f"version {value!r} is not a semantic version MAJOR.MINOR.PATCH[-prerelease], "
                "e.g. 1.2.0 or 2.0.0-rc.1"
            )
        return value


class ParameterSpec(_Model):
    """One declared launch parameter.

    Whether ``default`` was given is tracked (:attr:`has_default`), so ``default: null`` differs
    from no default. A required parameter with a default is satisfied by the default.
    """

    name: str
    type: ParameterType = "string"
    required: bool = False
    default: Any = None
    enum: list[Any] | None = None
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _PARAMETER_NAME.match(value):
            raise _invalid(f"parameter name {value!r} must match [A-Za-z_][A-Za-z0-9_]*")
        return value

    @property
    def has_default(self) -> bool:
        """True when the document gave a ``default`` (even ``null``)."""
        return "default" in self.model_fields_set

    @model_serializer(mode="wrap")
    def _serialize(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if not self.has_default:
            data.pop("default", None)
        return data


class RetryPolicy(_Model):
    """How a failed step is retried: at most ``maxAttempts`` attempts in all (1 = no retry)."""

    maxAttempts: int = Field(default=3, ge=1)
    strategy: Literal["exponential", "linear", "fixed"] = "exponential"
    initialDelayMs: int = Field(default=1000, ge=0)
    backoffMultiplier: float = Field(default=2.0, ge=1)
    maxDelayMs: int = Field(default=60000, ge=0)
    jitter: float = Field(default=0.0, ge=0, le=1)

    def delay_ms(self, failed_attempt: int, rand: float = 0.5) -> int:
        """Milliseconds to wait before the next attempt after attempt ``failed_attempt`` failed.

        ``failed_attempt`` is 1-based. Base delay: exponential ``initial * multiplier**(n-1)``,
        linear ``initial * n``, fixed ``initial``; capped at ``maxDelayMs``. Jitter ``j`` then
        scales it by ``1 - j + 2*j*rand`` (a factor in ``[1-j, 1+j]``; ``rand=0.5`` gives the
        base delay) and the result is capped again. Deterministic for a given ``rand``.
        Raises :class:`ValueError` if ``failed_attempt < 1`` or ``rand`` is outside ``[0, 1]``.
        """
        if failed_attempt < 1:
            raise ValueError(f"failed_attempt must be >= 1, got {failed_attempt}")
        if not 0.0 <= rand <= 1.0:
            raise ValueError(f"rand must be in [0, 1], got {rand}")
        base: float
        if self.strategy == "exponential":
            try:
                base = self.initialDelayMs * self.backoffMultiplier ** (failed_attempt - 1)
            except OverflowError:
                base = math.inf
        elif self.strategy == "linear":
            base = float(self.initialDelayMs) * failed_attempt
        else:
            base = float(self.initialDelayMs)
        capped = min(base, float(self.maxDelayMs))
        jittered = capped * (1.0 - self.jitter + 2.0 * self.jitter * rand)
        return round(min(jittered, float(self.maxDelayMs)))


class CacheSettings(_Model):
    """Caching of a step's result (spec section 9). ``ttlSeconds`` ``None`` = no expiry;
    ``exclude`` lists input keys left out of the fingerprint; ``sortArrays`` sorts arrays first;
    ``version`` is part of the fingerprint."""

    enabled: bool = False
    ttlSeconds: int | None = Field(default=None, ge=1)
    exclude: list[str] = Field(default_factory=list)
    sortArrays: bool = False
    # bump to invalidate every entry stored under the previous value (part of the fingerprint)
    version: str | None = Field(default=None, min_length=1, max_length=100)


class StepCacheSettings(_Model):
    """A step's ``cache``: each field given overrides the same field of
    ``execution.caching``; a field left out (null) keeps the definition's default."""

    enabled: bool | None = None
    ttlSeconds: int | None = Field(default=None, ge=1)
    exclude: list[str] | None = None
    sortArrays: bool | None = None
    version: str | None = Field(default=None, min_length=1, max_length=100)


def _all_decisions() -> list[Decision]:
    return ["continue", "retry", "abort"]


class CheckpointSpec(_Model):
    """``checkpoint_after``: a human decision after the step finishes (spec section 5).

    ``options`` must be non-empty and without repeats; ``onTimeout`` is applied when
    ``timeoutSeconds`` elapse without a decision (it need not be one of ``options``).
    """

    question: str
    options: list[Decision] = Field(default_factory=_all_decisions)
    timeoutSeconds: int | None = Field(default=None, ge=1)
    onTimeout: TimeoutDecision = "abort"

    @field_validator("options")
    @classmethod
    def _check_options(cls, value: list[Decision]) -> list[Decision]:
        if not value:
            raise _invalid("options must list at least one of continue, retry, abort")
        if len(set(value)) != len(value):
            raise _invalid("options must not repeat a decision")
        return value


class OrchestrationTarget(_Model):
    """The child orchestration a ``type: orchestration`` step launches. ``version`` is a version
    range (e.g. ``^1``) matched by the engine; ``None`` means the highest active version."""

    name: str
    version: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise _invalid(f"name {value!r} must match [a-z0-9-]+ (lowercase letters, digits, -)")
        return value


class StepSpec(_Model):
    """One step. ``retry`` overrides ``error_handling.on_step_failure`` and ``cache`` overrides
    ``execution.caching`` for this step; ``timeoutSeconds`` bounds one attempt."""

    id: str
    type: StepType = "agent"
    agent: str | None = None
    input: Any = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)
    output_mapping: dict[str, str] | None = None
    cache: StepCacheSettings | None = None
    timeoutSeconds: float | None = Field(default=None, gt=0)
    retry: RetryPolicy | None = None
    checkpoint_after: CheckpointSpec | None = None
    orchestration: OrchestrationTarget | None = None

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not _STEP_ID.match(value):
            raise _invalid(
                f"step id {value!r} must match [a-z0-9_-]+ (lowercase letters, digits, _ and -)"
            )
        return value


class Concurrency(_Model):
    """``execution.concurrency``: at most ``maxParallelSteps`` steps of a run at once (>= 1)."""

    maxParallelSteps: int = 10

    @field_validator("maxParallelSteps")
    @classmethod
    def _check_max(cls, value: int) -> int:
        if value < 1:
            raise _invalid(
                f"maxParallelSteps must be at least 1, got {value} (a run with no step slots "
                "could never make progress)"
            )
        return value


class Execution(_Model):
    """``execution``: concurrency, the default cache settings, the whole-run deadline."""

    concurrency: Concurrency = Field(default_factory=Concurrency)
    caching: CacheSettings = Field(default_factory=CacheSettings)
    timeoutSeconds: float | None = Field(default=None, gt=0)


class ErrorHandling(_Model):
    """``error_handling``: the default retry policy of every step."""

    on_step_failure: RetryPolicy = Field(default_factory=RetryPolicy)


class Orchestration(_Model):
    """``orchestration``: parameters, execution settings, error handling and (>= 1) steps."""

    parameters: list[ParameterSpec] = Field(default_factory=list)
    execution: Execution = Field(default_factory=Execution)
    error_handling: ErrorHandling = Field(default_factory=ErrorHandling)
    steps: list[StepSpec]

    @field_validator("steps")
    @classmethod
    def _check_steps(cls, value: list[StepSpec]) -> list[StepSpec]:
        if not value:
            raise _invalid("an orchestration needs at least one step")
        return value


class Definition(_Model):
    """A whole definition document, with graph helpers over its steps."""

    metadata: Metadata
    orchestration: Orchestration

    _by_id: dict[str, StepSpec] = PrivateAttr(default_factory=dict)
    _upstream: dict[str, frozenset[str]] = PrivateAttr(default_factory=dict)
    _document: dict[str, Any] | None = PrivateAttr(default=None)
    _digest: str | None = PrivateAttr(default=None)

    def model_post_init(self, context: Any, /) -> None:
        """Index steps by id (the first step wins if ids repeat; parse_definition forbids it)."""
        for spec in self.orchestration.steps:
            self._by_id.setdefault(spec.id, spec)

    def __eq__(self, other: object) -> bool:
        """Equal when the documents are equal (internal caches do not count)."""
        if not isinstance(other, Definition):
            return NotImplemented
        return self.metadata == other.metadata and self.orchestration == other.orchestration

    __hash__ = None  # type: ignore[assignment]  # holds lists, like the document it models

    @property
    def step_ids(self) -> list[str]:
        """Step ids in definition order."""
        return [spec.id for spec in self.orchestration.steps]

    def step(self, step_id: str) -> StepSpec:
        """The step with this id; raises :class:`KeyError` if there is none."""
        try:
            # the private dict directly: ``self._by_id`` goes through pydantic's
            # ``__getattr__`` (about 3 us), and the engine asks this several times per step
            by_id: dict[str, StepSpec] = self.__pydantic_private__["_by_id"]  # type: ignore[index]
            return by_id[step_id]
        except KeyError:
            raise KeyError(f"definition {self.metadata.name} has no step {step_id!r}") from None

    def dependents(self) -> dict[str, list[str]]:
        """Map every step id to the ids of the steps that depend on it directly, in
        definition order (``[]`` for a step nothing depends on)."""
        result: dict[str, list[str]] = {spec.id: [] for spec in self.orchestration.steps}
        for spec in self.orchestration.steps:
            for dep in dict.fromkeys(spec.depends_on):
                if dep in result:
                    result[dep].append(spec.id)
        return result

    def roots(self) -> list[str]:
        """Ids of the steps without dependencies, in definition order."""
        return [spec.id for spec in self.orchestration.steps if not spec.depends_on]

    def upstream(self, step_id: str) -> set[str]:
        """Ids of every step ``step_id`` depends on, directly or transitively (not itself,
        unless it is on a cycle). Returns a new set each call; computed once per step.
        Raises :class:`KeyError` for an unknown step."""
        cached = self._upstream.get(step_id)
        if cached is None:
            start = self.step(step_id)
            seen: set[str] = set()
            stack = list(start.depends_on)
            while stack:
                current = stack.pop()
                if current in seen or current not in self._by_id:
                    continue
                seen.add(current)
                stack.extend(self._by_id[current].depends_on)
            cached = self._upstream[step_id] = frozenset(seen)
        return set(cached)

    def retry_policy(self, step_id: str) -> RetryPolicy:
        """The step's own ``retry`` if set, else ``error_handling.on_step_failure``."""
        spec = self.step(step_id)
        if spec.retry is not None:
            return spec.retry
        return self.orchestration.error_handling.on_step_failure

    def cache_settings(self, step_id: str) -> CacheSettings:
        """``execution.caching`` with the fields the step's ``cache`` gives laid over it."""
        base = self.orchestration.execution.caching
        own = self.step(step_id).cache
        if own is None:
            return base
        changes = {k: v for k, v in own.model_dump().items() if v is not None}
        return base.model_copy(update=changes)

    def to_document(self) -> dict[str, Any]:
        """A JSON-able dict of the whole definition, defaults included (a parameter without a
        default stays without one); ``parse_definition(d.to_document()) == d``."""
        return copy.deepcopy(self.shared_document())

    def shared_document(self) -> dict[str, Any]:
        """The same document as :meth:`to_document`, dumped once and shared: callers must not
        change it (storing it as a run's snapshot only serialises it)."""
        if self._document is None:  # the model is frozen, so the dump never goes stale
            self._document = self.model_dump(mode="json")
        return self._document

    def digest(self) -> str:
        """SHA-256 of the canonical JSON of the document: equal definitions, equal digests
        (runs of one document share what is derived from it)."""
        if self._digest is None:
            canonical = json.dumps(self.shared_document(), sort_keys=True, separators=(",", ":"))
            self._digest = hashlib.sha256(canonical.encode()).hexdigest()
        return self._digest


# Parsing and launch-parameter checks live in their own modules; re-exported here because
# callers think of them as part of the definition format.
from podium.domain.loading import DEFAULT_LIMITS, DefinitionLimits  # noqa: E402
from podium.domain.parameters import apply_parameters  # noqa: E402
from podium.domain.validation import parse_definition  # noqa: E402
