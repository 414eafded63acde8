"""The OpenAPI 3.1 document, generated from the operation table and its pydantic models.

Nothing here is written by hand per endpoint: paths, parameters, bodies and responses all come
from each `Operation` (its handler's `query`/`headers`/`body` models and its `Reply`s), so the
document describes exactly what the pipeline validates and renders.
"""

import re
import types
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from rest_compat.operations import Operation
from rest_compat.shapes import ErrorOut

REF = "#/components/schemas/{model}"
Mode = Literal["validation", "serialization"]

ERRORS: Mapping[int, str] = {
    400: "Malformed JSON body (type BadRequest)",
    401: "Missing or invalid token (type AuthenticationError)",
    403: "The token lacks this operation's permission (type AuthorizationError)",
    404: "No such task, step, namespace or handler",
    409: "Not possible in the current state (InvalidTransition), or a reused Idempotency-Key",
    413: "Request body over the size limit",
    422: "Invalid input (type ValidationError; `details` lists messages by field)",
    503: "Unavailable: analytics cannot be computed, or a health check failed",
}

PATH_PARAMS: Mapping[str, tuple[str, dict[str, Any]]] = {
    "id": ("The task id", {"type": "string", "format": "uuid"}),
    "task_id": ("The task id", {"type": "string", "format": "uuid"}),
    "step_id": ("The step's name (e.g. validate_payment) or numeric id", {"type": "string"}),
    "namespace": ("The namespace name (e.g. payments)", {"type": "string"}),
    "name": ("The handler name (e.g. process_payment)", {"type": "string"}),
}

INFO = {
    "title": "Tasker REST API",
    "version": "1.0.0",
    "description": (
        "Handler discovery, task management and dependency analysis for Tasker "
        "(the compatibility surface of seed/REST_API.md, plus additive task and step commands). "
        'Every error answers `{"error": {type, message, details?, code}}`. Each operation\'s '
        "`x-permission` is what a token must grant when authentication is on."
    ),
}


def build_document(
    operations: Sequence[Operation],
    *,
    auth_required: bool,
    waived: Collection[str] = frozenset(),
) -> dict[str, Any]:
    """The whole document; `auth_required` when a JWT key is configured; `waived`: the
    permissions the server's configuration lets anyone use (e.g. metrics, by default)."""
    refs, components = _schemas(operations)
    ids = [op.handler.__name__ for op in operations]
    assert len(set(ids)) == len(ids), "operationIds (handler names) must be unique"
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        # A public or waived operation ignores tokens altogether, auth on or off.
        needs_token = auth_required and not op.public and op.permission not in waived
        open_to_all = op.public or (auth_required and not needs_token)
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(
            op, refs, needs_token=needs_token, open_to_all=open_to_all
        )
    return {
        "openapi": "3.1.0",
        "info": INFO,
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def _schemas(operations: Iterable[Operation]) -> tuple[dict[Any, Any], dict[str, Any]]:
    """JSON Schemas of every model involved, with references into components."""
    wanted: dict[tuple[type[BaseModel], Mode], None] = {(ErrorOut, "serialization"): None}
    for op in operations:
        for model in op.inputs.values():
            wanted[(model, "validation")] = None
        for reply in op.replies:
            for model in _models(reply.model):
                wanted[(model, "serialization")] = None
    refs, defs = models_json_schema(list(wanted), ref_template=REF)
    components = dict(defs.get("$defs", {}))
    # Parameter models are spread into parameters, not referenced as a whole.
    for op in operations:
        for kind, model in op.inputs.items():
            if kind != "body":
                components.pop(model.__name__, None)
    return refs, components


def _models(annotation: Any) -> list[type[BaseModel]]:
    if annotation is None:
        return []
    if get_origin(annotation) in (Union, types.UnionType):
        return [m for arg in get_args(annotation) for m in _models(arg)]
    return [annotation]


def _ref(refs: Mapping[Any, Any], model: type[BaseModel], mode: Mode) -> dict[str, Any]:
    return dict(refs[(model, mode)])


def _operation(
    op: Operation, refs: Mapping[Any, Any], *, needs_token: bool, open_to_all: bool
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "operationId": op.handler.__name__,
        "summary": op.summary,
        "tags": [op.tag],
    }
    if not op.public:
        out["x-permission"] = op.permission
    if needs_token:
        out["security"] = [{"bearerAuth": []}]
    elif open_to_all:
        out["security"] = []
    else:
        # With no JWT key configured the server is open; a token is then optional.
        out["security"] = [{"bearerAuth": []}, {}]
    if op.description:
        out["description"] = op.description
    out["parameters"] = _path_parameters(op.path) + [
        p
        for kind in ("query", "headers")
        if kind in op.inputs
        for p in _parameters(op.inputs[kind], "query" if kind == "query" else "header", refs)
    ]
    if "body" in op.inputs:
        out["requestBody"] = {
            "required": getattr(op.inputs["body"], "body_required", True),
            "content": {
                "application/json": {"schema": _ref(refs, op.inputs["body"], "validation")}
            },
        }
    out["responses"] = {**_replies(op, refs), **_errors(op, needs_token, refs)}
    return out


def _path_parameters(path: str) -> list[dict[str, Any]]:
    out = []
    for name in re.findall(r"{(\w+)}", path):
        description, schema = PATH_PARAMS[name]
        out.append(
            {
                "name": name,
                "in": "path",
                "required": True,
                "description": description,
                "schema": schema,
            }
        )
    return out


def _parameters(model: type[BaseModel], where: str, refs: Mapping[Any, Any]) -> list[Any]:
    schema = model.model_json_schema(ref_template=REF)
    out = []
    for name, field in model.model_fields.items():
        alias = field.alias or name
        prop = _unwrap_optional(dict(schema["properties"][alias]))
        description = prop.pop("description", None)
        prop.pop("title", None)
        param = {"name": alias, "in": where, "required": field.is_required(), "schema": prop}
        if description:
            param["description"] = description
        out.append(param)
    return out


def _unwrap_optional(prop: dict[str, Any]) -> dict[str, Any]:
    """`X | None` as X: an absent parameter is how a query string says None."""
    options = [o for o in prop.get("anyOf", []) if o != {"type": "null"}]
    if len(options) == 1:
        prop = {**{k: v for k, v in prop.items() if k != "anyOf"}, **options[0]}
    if "default" in prop and prop["default"] is None:
        del prop["default"]
    return prop


def _replies(op: Operation, refs: Mapping[Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for reply in op.replies:
        entry: dict[str, Any] = {"description": reply.description}
        models = _models(reply.model)
        if models:
            schemas = [_ref(refs, m, "serialization") for m in models]
            if reply.media_type == "text/event-stream":
                schemas = [_sse_event(m, ref) for m, ref in zip(models, schemas, strict=True)]
            schema = schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
            entry["content"] = {reply.media_type: {"schema": schema}}
        elif reply.schema is not None:
            entry["content"] = {reply.media_type: {"schema": reply.schema}}
        for media_type, schema in reply.alternatives:
            entry.setdefault("content", {})[media_type] = {"schema": schema}
        if reply.links:
            entry["links"] = {
                link.operation: {"operationId": link.operation, "parameters": dict(link.parameters)}
                for link in reply.links
            }
        out[str(reply.status)] = entry
    return out


def _sse_event(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    """One server-sent event whose `data` is `model` as JSON (before OpenAPI 3.2's
    `itemSchema`, the schema of an event stream describes each event)."""
    name = getattr(model, "sse_event", "message")
    required = ["event", "data", "id"] if name == "message" else ["event", "data"]
    return {
        "type": "object",
        "required": required,
        "properties": {
            "event": {"const": name},
            "id": {"type": "string"},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": data,
            },
        },
    }


def _errors(op: Operation, auth: bool, refs: Mapping[Any, Any]) -> dict[str, Any]:
    statuses = set(op.errors)
    if op.inputs:
        statuses.add(422)
    if "body" in op.inputs:
        statuses |= {400, 413}
    if "{" in op.path:
        statuses.add(404)
    if auth:
        statuses |= {401, 403}
    error = {"application/json": {"schema": _ref(refs, ErrorOut, "serialization")}}
    return {str(s): {"description": ERRORS[s], "content": error} for s in sorted(statuses)}
