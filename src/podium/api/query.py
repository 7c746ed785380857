"""Strict query strings: a parameter the route does not declare, a single-valued one given
more than once, or a value with a NUL character is a 422, as an unknown member of a request
body is, so that a misspelt filter is an error rather than silently ignored."""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin

from fastapi import Request
from fastapi.dependencies.models import Dependant

from podium.errors import InvalidInput, Issue

MAX_ISSUES = 10


@dataclass(frozen=True)
class _Declared:
    names: frozenset[str]
    repeatable: frozenset[str]


def _takes_many(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin in (list, tuple, set, frozenset):
        return True
    if origin in (Union, types.UnionType):
        return any(_takes_many(arg) for arg in get_args(annotation))
    return False


def _declared(dependant: Dependant) -> _Declared:
    names = {p.alias for p in dependant.query_params}
    many = {p.alias for p in dependant.query_params if _takes_many(p.field_info.annotation)}
    for sub in dependant.dependencies:
        found = _declared(sub)
        names |= found.names
        many |= found.repeatable
    return _Declared(frozenset(names), frozenset(many))


# id(route) -> (route, what it declares); holding the route keeps its id from being reused
_CACHE: dict[int, tuple[Any, _Declared]] = {}


def _declared_by(route: Any) -> _Declared:
    cached = _CACHE.get(id(route))
    if cached is None or cached[0] is not route:
        dependant = getattr(route, "dependant", None)
        found = (
            _declared(dependant)
            if isinstance(dependant, Dependant)
            else _Declared(frozenset(), frozenset())
        )
        cached = _CACHE[id(route)] = (route, found)
    return cached[1]


async def strict_query(request: Request) -> None:
    """Router dependency: raise :class:`InvalidInput` for undeclared or repeated parameters."""
    route = request.scope.get("route")
    if route is None:
        return
    declared = _declared_by(route)
    issues = []
    for name in sorted(set(request.query_params)):
        shown = f"query.{name[:100]}"
        if name not in declared.names:
            issues.append(Issue(shown, "is not a parameter of this route"))
        elif any("\x00" in value for value in request.query_params.getlist(name)):
            issues.append(Issue(shown, "must not contain NUL characters"))
        elif name not in declared.repeatable and len(request.query_params.getlist(name)) > 1:
            issues.append(Issue(shown, "takes one value, not several"))
    if issues:
        raise InvalidInput("the request is invalid", issues[:MAX_ISSUES])
