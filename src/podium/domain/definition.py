"""The definition format (spec section 2): models, parsing and validation, launch parameters.

A definition is a YAML/JSON document with ``metadata`` and ``orchestration``. The models below
mirror it field for field (names exactly as in the spec, camelCase or snake_case as written
there); unknown keys are rejected so typos are caught, and every model is frozen.

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
import difflib
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
)
from pydantic_core import PydanticCustomError

from podium.domain.selectors import json_kind, parse_segments, validate_selector
from podium.domain.templating import Reference, collect_references, join_path
from podium.errors import DefinitionInvalid, Issue, ParametersInvalid

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
    "StepSpec",
    "apply_parameters",
    "parse_definition",
    "semver_key",
]

ParameterType = Literal["string", "integer", "number", "boolean", "object", "array"]
Decision = Literal["continue", "retry", "abort"]
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
    ``exclude`` lists input keys left out of the fingerprint; ``sortArrays`` sorts arrays first."""

    enabled: bool = False
    ttlSeconds: int | None = Field(default=None, ge=1)
    exclude: list[str] = Field(default_factory=list)
    sortArrays: bool = False


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
    onTimeout: Decision = "abort"

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
    cache: CacheSettings | None = None
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
            return self._by_id[step_id]
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
        """The step's own ``cache`` if set, else ``execution.caching``."""
        spec = self.step(step_id)
        if spec.cache is not None:
            return spec.cache
        return self.orchestration.execution.caching

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


# --------------------------------------------------------------------------------------------
# Limits
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DefinitionLimits:
    """Size limits of a definition. ``max_child_nesting`` (depth of child orchestrations) needs
    the other definitions, so the engine enforces it at launch; ``max_nesting_depth`` bounds
    how deeply the document's mappings and lists nest."""

    max_steps: int = 1000
    max_document_bytes: int = 1_048_576
    max_parameters: int = 100
    max_depends_on: int = 1000
    max_child_nesting: int = 5
    max_nesting_depth: int = 64


DEFAULT_LIMITS = DefinitionLimits()


# --------------------------------------------------------------------------------------------
# YAML loading
# --------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """Safe loader with JSON-compatible scalars and duplicate-key detection."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # "<<: *base" then overriding a merged key is not a duplicate
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # unhashable key: let the base class report it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_BOOL_TAG = "tag:yaml.org,2002:bool"
_DROPPED_TAGS = (_BOOL_TAG, "tag:yaml.org,2002:timestamp")
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class _Rejected(Exception):
    """Internal: the document cannot be examined further; carries the one issue."""

    def __init__(self, issue: Issue) -> None:
        super().__init__(issue.message)
        self.issue = issue


def _load(source: str | bytes | Mapping[str, Any], limits: DefinitionLimits) -> Any:
    """Turn ``source`` into plain data, enforcing document size and shape; raise _Rejected."""
    limit = limits.max_document_bytes
    if isinstance(source, str | bytes):
        size = len(source.encode("utf-8")) if isinstance(source, str) else len(source)
        if size > limit:
            raise _Rejected(
                Issue("", f"document is {size} bytes; the limit is {limit} (max_document_bytes)")
            )
        if isinstance(source, bytes):
            try:
                text = source.decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                raise _Rejected(Issue("", f"document is not valid UTF-8: {exc}")) from None
        else:
            text = source
        try:
            data = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = exc.problem or exc.context or "invalid YAML"
            raise _Rejected(Issue("", f"YAML syntax error{where}: {problem}")) from None
        except yaml.YAMLError as exc:
            raise _Rejected(Issue("", f"YAML syntax error: {exc}")) from None
        except RecursionError:
            raise _Rejected(Issue("", "document is nested too deeply")) from None
        _check_shape(data, limits)
    else:
        if not isinstance(source, Mapping):
            raise _Rejected(_not_a_mapping(source))
        data = dict(source)
        _check_shape(data, limits)
        try:
            size = len(json.dumps(data, ensure_ascii=False, default=str).encode("utf-8"))
        except (ValueError, TypeError) as exc:
            raise _Rejected(Issue("", f"document is not JSON-compatible: {exc}")) from None
        if size > limit:
            raise _Rejected(
                Issue(
                    "",
                    f"document is {size} bytes as JSON; the limit is {limit} (max_document_bytes)",
                )
            )
    if not isinstance(data, Mapping):
        raise _Rejected(_not_a_mapping(data))
    return data


def _not_a_mapping(data: Any) -> Issue:
    shown = "empty" if data is None else json_kind(data)
    return Issue("", f"a definition must be a mapping with metadata and orchestration, got {shown}")


def _check_shape(data: Any, limits: DefinitionLimits) -> None:
    """Reject documents nested too deeply or expanding (through YAML aliases or shared
    references) beyond ``max_document_bytes`` values. Iterative, so safe on any input."""
    budget = limits.max_document_bytes
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        budget -= 1
        if budget < 0:
            raise _Rejected(
                Issue(
                    "",
                    f"document expands to more than {limits.max_document_bytes} values "
                    "(max_document_bytes); are YAML aliases repeating large parts?",
                )
            )
        if depth > limits.max_nesting_depth:
            raise _Rejected(
                Issue(
                    "",
                    f"document nests deeper than {limits.max_nesting_depth} levels "
                    "(max_nesting_depth)",
                )
            )
        if isinstance(value, Mapping):
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list | tuple):
            stack.extend((item, depth + 1) for item in value)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def parse_definition(
    source: str | bytes | Mapping[str, Any], limits: DefinitionLimits = DEFAULT_LIMITS
) -> Definition:
    """Parse and validate a definition given as YAML or JSON text or an already-parsed mapping.

    Raises :class:`DefinitionInvalid` (``"definition <name or ?> is invalid: N problem(s)"``)
    carrying every problem found, each an :class:`Issue` located by a path such as
    ``orchestration.steps[2].depends_on[0]``. A document that cannot be read at all (YAML
    syntax error, not a mapping, too large) yields a single issue with path ``""``.
    """
    try:
        data = _load(source, limits)
    except _Rejected as rejected:
        raise DefinitionInvalid("definition ? is invalid: 1 problem(s)", [rejected.issue]) from None

    issues = _limit_issues(data, limits)
    issues.extend(_structure_issues(data))
    issues.extend(_semantic_issues(data))
    issues.sort(key=_document_order)
    if issues:
        metadata = data.get("metadata")
        name = metadata.get("name") if isinstance(metadata, Mapping) else None
        shown = name if isinstance(name, str) and name else "?"
        raise DefinitionInvalid(f"definition {shown} is invalid: {len(issues)} problem(s)", issues)
    return Definition.model_validate(data)


def _document_order(issue: Issue) -> tuple[Any, ...]:
    """Sort key grouping issues by location: array items by index, then fields by name."""
    try:
        segments = parse_segments("." + issue.path) if issue.path else ()
    except ValueError:
        return ((2, issue.path),)
    return tuple((0, s, "") if isinstance(s, int) else (1, 0, s) for s in segments)


def _as_map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _steps_path(index: int) -> str:
    return f"orchestration.steps[{index}]"


def _limit_issues(data: Mapping[str, Any], limits: DefinitionLimits) -> list[Issue]:
    issues: list[Issue] = []
    orchestration = _as_map(data.get("orchestration"))
    steps = _as_list(orchestration.get("steps"))
    if len(steps) > limits.max_steps:
        issues.append(
            Issue(
                "orchestration.steps",
                f"{len(steps)} steps; the limit is {limits.max_steps} steps per definition "
                "(max_steps)",
            )
        )
    parameters = _as_list(orchestration.get("parameters"))
    if len(parameters) > limits.max_parameters:
        issues.append(
            Issue(
                "orchestration.parameters",
                f"{len(parameters)} parameters; the limit is {limits.max_parameters} "
                "(max_parameters)",
            )
        )
    for index, step in enumerate(steps):
        depends_on = _as_list(_as_map(step).get("depends_on"))
        if len(depends_on) > limits.max_depends_on:
            issues.append(
                Issue(
                    f"{_steps_path(index)}.depends_on",
                    f"{len(depends_on)} dependencies; the limit is {limits.max_depends_on} "
                    "per step (max_depends_on)",
                )
            )
    return issues


def _loc_path(loc: Sequence[int | str]) -> str:
    path = ""
    for part in loc:
        path = join_path(path, part)
    return path


def _submodel(annotation: Any) -> type[BaseModel] | None:
    """The model class inside ``X``, ``X | None`` or ``list[X]``, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _submodel(arg)
        if found is not None:
            return found
    return None


def _model_at(loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model that validates the object at ``loc`` inside a Definition, if any."""
    model: type[BaseModel] | None = Definition
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None or part not in model.model_fields:
            return None
        model = _submodel(model.model_fields[part].annotation)
    return model


def _suggest(word: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _structure_issues(data: Mapping[str, Any]) -> list[Issue]:
    """Field-level problems (types, ranges, patterns, unknown and missing fields) by pydantic."""
    try:
        Definition.model_validate(data)
    except ValidationError as exc:
        issues: list[Issue] = []
        for error in exc.errors(include_url=False):
            loc = list(error["loc"])
            message = error["msg"]
            if loc and loc[-1] == "[key]":
                loc.pop()
                message = f"invalid key {error['input']!r}: {message}"
            elif error["type"] == "missing":
                message = "required field is missing"
            elif error["type"] == "string_type" and type(error["input"]) in (int, float):
                message = f"{message}, got the number {error['input']!r}; quote it in YAML"
            elif error["type"] == "extra_forbidden" and loc and isinstance(loc[-1], str):
                model = _model_at(loc[:-1])
                known = list(model.model_fields) if model is not None else []
                message = f"unknown field {loc[-1]!r}{_suggest(loc[-1], known)}"
            issues.append(Issue(_loc_path(loc), message))
        return issues
    return []


_TYPE_NAMES: dict[str, str] = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "object": "an object",
    "array": "an array",
}


def _type_matches(value: Any, kind: str) -> bool:
    """JSON-schema-like type check; booleans are not numbers, integers are numbers."""
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "integer":
        return isinstance(value, int)
    if kind == "number":
        return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
    if kind == "object":
        return isinstance(value, Mapping) and all(isinstance(k, str) for k in value)
    if kind == "array":
        return isinstance(value, list | tuple)
    return False


def _same_value(left: Any, right: Any) -> bool:
    """JSON equality: ``true`` differs from ``1``; ``1`` equals ``1.0``."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(_same_value(left[k], right[k]) for k in left)
    if isinstance(left, list | tuple) and isinstance(right, list | tuple):
        return len(left) == len(right) and all(map(_same_value, left, right))
    if isinstance(left, list | tuple | Mapping) or isinstance(right, list | tuple | Mapping):
        return False
    return bool(left == right)


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= 80 else text[:77] + "..."


def _value_problem(value: Any, kind: str, enum: list[Any] | None) -> str | None:
    """Why ``value`` is not acceptable for a parameter of this type and enum, or None."""
    if not _type_matches(value, kind):
        return f"expected {_TYPE_NAMES[kind]}, got {json_kind(value)} ({_show(value)})"
    if enum is not None and not any(_same_value(value, allowed) for allowed in enum):
        return f"{_show(value)} is not one of the allowed values {_show(enum)}"
    return None


def _json_issues(value: Any, path: str) -> Iterator[Issue]:
    """Issues for anything in ``value`` that JSON cannot carry (non-string keys, dates,
    binary, non-finite numbers)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                yield Issue(path, f"key {key!r} must be a string")
            else:
                yield from _json_issues(item, join_path(path, key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _json_issues(item, join_path(path, index))
    elif isinstance(value, float) and not math.isfinite(value):
        yield Issue(path, f"{value} is not a JSON number")
    elif value is not None and not isinstance(value, str | int | float | bool):
        yield Issue(path, f"a {type(value).__name__} value is not JSON; use a string")


def _parameter_issues(data: Mapping[str, Any]) -> tuple[list[Issue], set[str]]:
    """Checks on declared parameters; also returns the declared names (as far as readable)."""
    issues: list[Issue] = []
    first_at: dict[str, int] = {}
    raw_parameters = _as_list(_as_map(data.get("orchestration")).get("parameters"))
    for index, raw in enumerate(raw_parameters):
        if not isinstance(raw, Mapping):
            continue
        path = f"orchestration.parameters[{index}]"
        name = raw.get("name")
        if isinstance(name, str):
            if name in first_at:
                issues.append(
                    Issue(
                        f"{path}.name",
                        f"duplicate parameter name {name!r} (first declared at "
                        f"orchestration.parameters[{first_at[name]}])",
                    )
                )
            else:
                first_at[name] = index
        if "default" in raw:
            issues.extend(_json_issues(raw["default"], f"{path}.default"))
        enum = raw.get("enum")
        if isinstance(enum, list):
            issues.extend(_json_issues(enum, f"{path}.enum"))
        kind = raw.get("type", "string")
        if not isinstance(kind, str) or kind not in _TYPE_NAMES:
            continue  # reported by the structure check
        enum_ok = isinstance(enum, list)
        if isinstance(enum, list):
            if not enum:
                issues.append(Issue(f"{path}.enum", "enum must list at least one value"))
                enum_ok = False
            for position, allowed in enumerate(enum):
                if not _type_matches(allowed, kind):
                    enum_ok = False
                    issues.append(
                        Issue(
                            f"{path}.enum[{position}]",
                            f"enum value {_show(allowed)} is not {_TYPE_NAMES[kind]} "
                            f"(the parameter's type is {kind})",
                        )
                    )
        if "default" in raw:
            default = raw["default"]
            if not _type_matches(default, kind):
                issues.append(
                    Issue(
                        f"{path}.default",
                        f"default {_show(default)} is not {_TYPE_NAMES[kind]} "
                        f"(the parameter's type is {kind})",
                    )
                )
            elif (
                enum_ok
                and isinstance(enum, list)
                and not any(_same_value(default, allowed) for allowed in enum)
            ):
                issues.append(
                    Issue(
                        f"{path}.default",
                        f"default {_show(default)} is not one of the enum values {_show(enum)}",
                    )
                )
    return issues, set(first_at)


def _find_cycles(graph: Mapping[str, list[str]], order: Sequence[str]) -> list[list[str]]:
    """Distinct cycles found by an iterative depth-first search (one per back edge), each
    rotated to start at its earliest step in ``order``; ``graph`` maps id -> dependencies."""
    position = {step_id: index for index, step_id in enumerate(order)}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    cycles: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()
    for root in order:
        if root in state:
            continue
        state[root] = 1
        path = [root]
        stack: list[Iterator[str]] = [iter(graph.get(root, []))]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
                continue
            if nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(graph.get(nxt, [])))
            elif state[nxt] == 1:
                cycle = path[path.index(nxt) :]
                start = min(range(len(cycle)), key=lambda i: position[cycle[i]])
                rotated = tuple(cycle[start:] + cycle[:start])
                if rotated not in seen:
                    seen.add(rotated)
                    cycles.append(list(rotated))
    return cycles


def _closure(direct: Sequence[str], graph: Mapping[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    stack = list(direct)
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(graph.get(current, []))
    return seen


def _upstream_masks(
    graph: Mapping[str, list[str]], bits: Mapping[str, int]
) -> dict[str, int] | None:
    """Transitive dependencies of every step as bit masks (``bits`` gives each step's bit),
    computed once in topological order; ``None`` if the graph has a cycle."""
    remaining = {step_id: len(deps) for step_id, deps in graph.items()}
    dependents: dict[str, list[str]] = {step_id: [] for step_id in graph}
    for step_id, deps in graph.items():
        for dep in deps:
            dependents[dep].append(step_id)
    ready = [step_id for step_id, count in remaining.items() if count == 0]
    masks: dict[str, int] = {}
    while ready:
        step_id = ready.pop()
        mask = 0
        for dep in graph[step_id]:
            mask |= bits[dep] | masks[dep]
        masks[step_id] = mask
        for dependent in dependents[step_id]:
            remaining[dependent] -= 1
            if remaining[dependent] == 0:
                ready.append(dependent)
    return masks if len(masks) == len(graph) else None


def _upstream_test(
    deps: Sequence[str],
    graph: Mapping[str, list[str]],
    bits: Mapping[str, int],
    masks: Mapping[str, int] | None,
) -> Callable[[str], bool]:
    """A membership test for the transitive dependencies of a step with direct ``deps``."""
    if masks is None:  # a cycle: fall back to a plain search
        return _closure(deps, graph).__contains__
    mask = 0
    for dep in deps:
        mask |= bits[dep] | masks[dep]
    return lambda step_id: bool(mask & bits.get(step_id, 0))


def _semantic_issues(data: Mapping[str, Any]) -> list[Issue]:
    """Cross-field and cross-step rules, checked on whatever parts of the document are
    readable (so they are reported together with field-level problems)."""
    issues, parameter_names = _parameter_issues(data)
    raw_steps = _as_list(_as_map(data.get("orchestration")).get("steps"))
    steps = [_as_map(raw) for raw in raw_steps]

    first_at: dict[str, int] = {}
    ids: list[str | None] = []
    for index, step in enumerate(steps):
        step_id = step.get("id")
        if not isinstance(step_id, str):
            ids.append(None)
            continue
        ids.append(step_id)
        if step_id in first_at:
            issues.append(
                Issue(
                    f"{_steps_path(index)}.id",
                    f"duplicate step id {step_id!r} (first used by "
                    f"{_steps_path(first_at[step_id])})",
                )
            )
        else:
            first_at[step_id] = index

    # Dependencies: existence, self, repeats; build the graph of valid edges.
    direct: list[list[str]] = []
    graph: dict[str, list[str]] = {}
    for index, step in enumerate(steps):
        step_id = ids[index]
        deps: list[str] = []
        for position, dep in enumerate(_as_list(step.get("depends_on"))):
            if not isinstance(dep, str):
                continue  # reported by the structure check
            path = f"{_steps_path(index)}.depends_on[{position}]"
            if dep == step_id:
                issues.append(Issue(path, f"step {dep!r} depends on itself"))
            elif dep not in first_at:
                issues.append(Issue(path, f"unknown step {dep!r}{_suggest(dep, list(first_at))}"))
            elif dep in deps:
                issues.append(Issue(path, f"{dep!r} is listed twice"))
            else:
                deps.append(dep)
        direct.append(deps)
        if step_id is not None and first_at.get(step_id) == index:
            graph[step_id] = deps

    for cycle in _find_cycles(graph, list(first_at)):
        issues.append(
            Issue(
                f"{_steps_path(first_at[cycle[0]])}.depends_on",
                f"cycle: {' -> '.join([*cycle, cycle[0]])} (each step depends on the next)",
            )
        )

    bits = {step_id: 1 << position for position, step_id in enumerate(first_at)}
    masks = _upstream_masks(graph, bits)
    for index, step in enumerate(steps):
        is_upstream = _upstream_test(direct[index], graph, bits, masks)
        issues.extend(_step_issues(index, step, ids[index], is_upstream, first_at, parameter_names))
    return issues


def _step_issues(
    index: int,
    step: Mapping[str, Any],
    step_id: str | None,
    is_upstream: Callable[[str], bool],
    known_steps: Mapping[str, int],
    parameter_names: set[str],
) -> list[Issue]:
    issues: list[Issue] = []
    base = _steps_path(index)
    kind = step.get("type", "agent")
    target = step.get("orchestration")
    if kind == "agent":
        if step.get("agent") is None:
            issues.append(
                Issue(f"{base}.agent", "an agent step must name an agent (agent: <slug>)")
            )
        if target is not None:
            issues.append(
                Issue(
                    f"{base}.orchestration",
                    "only a step with type: orchestration launches a child orchestration",
                )
            )
    elif kind == "orchestration":
        if target is None:
            issues.append(
                Issue(
                    f"{base}.orchestration",
                    "an orchestration step must name its target (orchestration: {name: ...})",
                )
            )
        if step.get("agent") is not None:
            issues.append(
                Issue(f"{base}.agent", "an orchestration step does not call an agent; remove it")
            )

    mapping = step.get("output_mapping")
    if isinstance(mapping, Mapping):
        for key, selector in mapping.items():
            if isinstance(key, str) and isinstance(selector, str):
                problem = validate_selector(selector)
                if problem is not None:
                    issues.append(Issue(join_path(f"{base}.output_mapping", key), problem))

    # Templated fields: input, orchestration.parameters, checkpoint_after.question.
    templated: list[tuple[str, Any, bool]] = []
    if "input" in step:
        issues.extend(_json_issues(step["input"], f"{base}.input"))
        templated.append((f"{base}.input", step["input"], False))
    target_parameters = _as_map(target).get("parameters")
    if isinstance(target_parameters, Mapping):
        path = f"{base}.orchestration.parameters"
        for key, value in target_parameters.items():
            if isinstance(key, str):
                issues.extend(_json_issues(value, join_path(path, key)))
        templated.append((path, target_parameters, False))
    question = _as_map(step.get("checkpoint_after")).get("question")
    if isinstance(question, str):
        templated.append((f"{base}.checkpoint_after.question", question, True))

    label = repr(step_id) if step_id is not None else base
    for path, value, own_output_readable in templated:
        references, syntax_issues = collect_references(value, path)
        issues.extend(syntax_issues)
        for where, ref in references:
            problem = _reference_problem(
                ref, label, step_id, is_upstream, known_steps, parameter_names, own_output_readable
            )
            if problem is not None:
                issues.append(Issue(where, problem))
    return issues


def _reference_problem(
    ref: Reference,
    label: str,
    step_id: str | None,
    is_upstream: Callable[[str], bool],
    known_steps: Mapping[str, int],
    parameter_names: set[str],
    own_output_readable: bool,
) -> str | None:
    if ref.kind == "parameters":
        if ref.name not in parameter_names:
            return (
                f"step {label} reads parameters.{ref.name} but no parameter {ref.name!r} is "
                f"declared{_suggest(ref.name, sorted(parameter_names))}"
            )
    elif ref.kind == "steps":
        if ref.name == step_id:
            if not own_output_readable:
                return (
                    f"step {label} reads its own output ({ref.text}); only checkpoint_after."
                    "question may do that"
                )
        elif ref.name not in known_steps:
            return (
                f"step {label} reads steps.{ref.name} but no step {ref.name!r} exists"
                f"{_suggest(ref.name, list(known_steps))}"
            )
        elif not is_upstream(ref.name):
            return (
                f"step {label} reads steps.{ref.name} but does not depend on it "
                f"(add {ref.name!r} to its depends_on)"
            )
    return None


# --------------------------------------------------------------------------------------------
# Launch parameters
# --------------------------------------------------------------------------------------------


def apply_parameters(definition: Definition, given: Mapping[str, Any]) -> dict[str, Any]:
    """Check launch parameters against the declared ones and apply defaults.

    Rejects, all at once, unknown names, missing required values (required without a default),
    values of the wrong type (booleans are not numbers; integers are numbers; ``null`` is no
    type) and values outside ``enum``: raises :class:`ParametersInvalid` with one issue per
    problem at ``parameters.<name>``. Returns a new dict, in declaration order, of the given
    values plus the defaults of parameters not given; parameters neither given nor defaulted
    (and not required) are absent.
    """
    specs = definition.orchestration.parameters
    declared = {spec.name for spec in specs}
    issues: list[Issue] = []
    for name in given:
        if name not in declared:
            known = ", ".join(spec.name for spec in specs) or "none"
            issues.append(
                Issue(
                    f"parameters.{name}",
                    f"unknown parameter {name!r}{_suggest(name, sorted(declared))}; "
                    f"declared: {known}",
                )
            )
    result: dict[str, Any] = {}
    for spec in specs:
        path = f"parameters.{spec.name}"
        if spec.name in given:
            value = given[spec.name]
            problem = _value_problem(value, spec.type, spec.enum)
            if problem is not None:
                issues.append(Issue(path, problem))
            else:
                result[spec.name] = copy.deepcopy(value)
        elif spec.has_default:
            result[spec.name] = copy.deepcopy(spec.default)
        elif spec.required:
            issues.append(Issue(path, f"required parameter {spec.name!r} is missing"))
    if issues:
        raise ParametersInvalid(f"parameters are invalid: {len(issues)} problem(s)", issues)
    return result
