"""Definitions (spec sections 2 and 13): push, list, show, activate, deactivate, validate.

A definition document is sent as a JSON object (``application/json``) or as YAML or JSON
text (``application/yaml``, ``text/yaml``). Invalid documents answer 422 with every issue;
``POST /api/definitions/validate`` answers 200 with the issues instead.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from podium.api.deps import ActorDep, StoreDep
from podium.api.errors import UnsupportedMediaType
from podium.api.openapi import errors
from podium.api.query import strict_query
from podium.api.schemas import NAME_PATTERN, nul_path
from podium.errors import DefinitionInvalid, Issue
from podium.service import definitions
from podium.service.definitions import Source
from podium.service.views import DefinitionSummary, DefinitionView, ValidationView

router = APIRouter(
    prefix="/api/definitions", tags=["definitions"], dependencies=[Depends(strict_query)]
)

JSON_TYPES = frozenset({"application/json"})
YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
_DOCUMENT_SCHEMA = {"type": "object", "additionalProperties": True}
DOCUMENT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The definition document (spec section 2), as JSON or YAML.",
        "content": {
            media: {"schema": _DOCUMENT_SCHEMA}
            for media in ("application/json", "application/yaml", "text/yaml")
        },
    }
}
Name = Annotated[str, Path(min_length=1, max_length=200, pattern=NAME_PATTERN)]
Version = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[0-9A-Za-z.+-]+$")]
DefinitionStatus = Literal["draft", "active", "inactive", "archived"]


async def read_document(request: Request) -> Source:
    """The definition in the request body: a JSON object, or YAML/JSON text for the domain
    to parse. JSON that does not hold an object is an invalid definition; another media type
    is a 415."""
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    raw = await request.body()
    if media in YAML_TYPES:
        return raw
    if media not in JSON_TYPES:
        raise UnsupportedMediaType(
            f"send the definition as application/json or application/yaml, not {media or 'no type'}"
        )
    try:
        value = json.loads(raw)
    except RecursionError:
        raise DefinitionInvalid(
            "the definition is invalid",
            [Issue("", "the document nests too deeply (max_nesting_depth)")],
        ) from None
    except ValueError as exc:
        raise DefinitionInvalid(
            "the definition is invalid", [Issue("", f"the body is not valid JSON: {exc}")]
        ) from None
    if not isinstance(value, dict):
        raise DefinitionInvalid(
            "the definition is invalid",
            [Issue("", f"a definition must be a JSON object, not {type(value).__name__}")],
        )
    if (found := nul_path(value)) is not None:
        raise DefinitionInvalid(
            "the definition is invalid", [Issue(found, "contains a NUL character")]
        )
    return value


@router.get(
    "",
    response_model=list[DefinitionSummary],
    summary="List definitions",
    responses=errors(422, 503),
)
def list_definitions(
    store: StoreDep,
    actor: ActorDep,
    status: Annotated[
        DefinitionStatus | None, Query(description="Only versions in this status.")
    ] = None,
) -> list[DefinitionSummary]:
    """Definitions visible to the caller (its organization's and ``global``), each with its
    versions, newest first."""
    return definitions.list_definitions(store, actor, status=status)


@router.post(
    "",
    status_code=201,
    response_model=DefinitionView,
    summary="Push a definition version",
    openapi_extra=DOCUMENT_BODY,
    responses={
        201: {"description": "The version was created."},
        200: {"description": "The same document was pushed before: nothing changed."},
        **errors(403, 409, 415, 422, 503),
    },
)
async def push(
    request: Request,
    response: Response,
    store: StoreDep,
    actor: ActorDep,
    activate: Annotated[
        bool, Query(description="Make the version active (else it is stored as draft).")
    ] = True,
) -> DefinitionView:
    """Store a new version of a definition. Versions are immutable: the same version with
    another document is a 409."""
    source = await read_document(request)
    view, created = await run_in_threadpool(
        definitions.push, store, actor, source, activate=activate
    )
    response.status_code = 201 if created else 200
    return view


@router.post(
    "/validate",
    response_model=ValidationView,
    summary="Validate a definition",
    openapi_extra=DOCUMENT_BODY,
    responses=errors(415, 422),
)
async def validate(request: Request, actor: ActorDep) -> ValidationView:
    """Every problem of a document, without saving it: 200 also when it is invalid (422 only
    for an unknown query parameter)."""
    try:
        source = await read_document(request)
    except DefinitionInvalid as exc:
        return ValidationView(valid=False, issues=[vars(i) for i in exc.issues])
    return await run_in_threadpool(definitions.validate, source)


@router.get(
    "/{name}",
    response_model=DefinitionView,
    summary="Latest active version",
    responses=errors(404, 422, 503),
)
def show(name: Name, store: StoreDep, actor: ActorDep) -> DefinitionView:
    """The highest active version, with its document."""
    return definitions.show(store, actor, name)


@router.get(
    "/{name}/versions/{version}",
    response_model=DefinitionView,
    summary="One version",
    responses=errors(404, 422, 503),
)
def show_version(name: Name, version: Version, store: StoreDep, actor: ActorDep) -> DefinitionView:
    """One version, with its document."""
    return definitions.show(store, actor, name, version)


@router.post(
    "/{name}/versions/{version}/activate",
    response_model=DefinitionView,
    summary="Activate a version",
    responses=errors(403, 404, 409, 422, 503),
)
def activate(name: Name, version: Version, store: StoreDep, actor: ActorDep) -> DefinitionView:
    """Make the version launchable."""
    return definitions.set_status(store, actor, name, version, "active")


@router.post(
    "/{name}/versions/{version}/deactivate",
    response_model=DefinitionView,
    summary="Deactivate a version",
    responses=errors(403, 404, 409, 422, 503),
)
def deactivate(name: Name, version: Version, store: StoreDep, actor: ActorDep) -> DefinitionView:
    """Stop new launches of the version; running runs are not affected."""
    return definitions.set_status(store, actor, name, version, "inactive")
