"""Reading a definition document: the YAML/JSON loader and the size limits checked before
any model is built."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from podium.domain.limits import check_json_value
from podium.domain.selectors import json_kind
from podium.errors import Issue, ValueInvalid, ValueTooDeep

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


class Rejected(Exception):
    """Internal: the document cannot be examined further; carries the one issue."""

    def __init__(self, issue: Issue) -> None:
        super().__init__(issue.message)
        self.issue = issue


def load_document(source: str | bytes | Mapping[str, Any], limits: DefinitionLimits) -> Any:
    """Turn ``source`` into plain data, enforcing document size and shape; raise Rejected."""
    limit = limits.max_document_bytes
    if isinstance(source, str | bytes):
        size = len(source.encode("utf-8")) if isinstance(source, str) else len(source)
        if size > limit:
            raise Rejected(
                Issue("", f"document is {size} bytes; the limit is {limit} (max_document_bytes)")
            )
        if isinstance(source, bytes):
            try:
                text = source.decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                raise Rejected(Issue("", f"document is not valid UTF-8: {exc}")) from None
        else:
            text = source
        try:
            data = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = exc.problem or exc.context or "invalid YAML"
            raise Rejected(Issue("", f"YAML syntax error{where}: {problem}")) from None
        except yaml.YAMLError as exc:
            raise Rejected(Issue("", f"YAML syntax error: {exc}")) from None
        except RecursionError:
            raise Rejected(Issue("", "document is nested too deeply")) from None
        _check_shape(data, limits)
    else:
        if not isinstance(source, Mapping):
            raise Rejected(_not_a_mapping(source))
        data = dict(source)
        _check_shape(data, limits)
        try:
            size = len(json.dumps(data, ensure_ascii=False, default=str).encode("utf-8"))
        except (ValueError, TypeError) as exc:
            raise Rejected(Issue("", f"document is not JSON-compatible: {exc}")) from None
        if size > limit:
            raise Rejected(
                Issue(
                    "",
                    f"document is {size} bytes as JSON; the limit is {limit} (max_document_bytes)",
                )
            )
    if not isinstance(data, Mapping):
        raise Rejected(_not_a_mapping(data))
    return data


def _not_a_mapping(data: Any) -> Issue:
    shown = "empty" if data is None else json_kind(data)
    return Issue("", f"a definition must be a mapping with metadata and orchestration, got {shown}")


def _check_shape(data: Any, limits: DefinitionLimits) -> None:
    """Reject documents nested deeper than ``max_nesting_depth`` or larger, as compact JSON
    after YAML aliases and shared references are expanded, than ``max_document_bytes``: a
    push refuses what a launch would refuse. Iterative, so safe on any input."""
    try:
        check_json_value(
            data,
            max_depth=limits.max_nesting_depth,
            max_bytes=limits.max_document_bytes,
            json_only=False,
        )
    except ValueTooDeep as exc:
        raise Rejected(
            Issue(
                exc.path, f"nests deeper than {limits.max_nesting_depth} levels (max_nesting_depth)"
            )
        ) from None
    except ValueInvalid:
        raise Rejected(
            Issue(
                "",
                f"document expands to more than {limits.max_document_bytes} bytes "
                "(max_document_bytes); are YAML aliases repeating large parts?",
            )
        ) from None
