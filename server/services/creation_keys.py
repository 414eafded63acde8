"""Idempotency keys of task creation: the request's fingerprint, the caller's scope, and
what a repeated key answers (the original task, or a Conflict when the request differs)."""

import hashlib
import json
from typing import Any

from server.db.models import Task
from server.db.rows import task_view
from server.domain.errors import Conflict, DomainError
from server.domain.templates import HandlerTemplate
from server.domain.views import TaskView
from server.services.creation_rows import Plan

Created = tuple[TaskView, bool]
Outcome = Created | DomainError
"""One request's result: (task, created) or the error that refused it."""


def identity_hash(template: HandlerTemplate, context: Any) -> str:
    """A stable fingerprint of what a task would do: handler identity plus canonical context."""
    canonical = json.dumps(
        [template.namespace, template.name, template.version, context],
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotency_scope(subject: str | None) -> str:
    """Whose idempotency keys: a digest of the token subject (fixed width for the index),
    '' when there is no caller (open mode: one scope for everybody)."""
    if subject is None:
        return ""
    return hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()


async def keyed(scope: str, key: str | None) -> Task | None:
    if not key:
        return None
    return await Task.get_or_none(idempotency_scope=scope, idempotency_key=key)


def same_request(existing: Task, fingerprint: str) -> TaskView:
    if existing.identity_hash != fingerprint:
        raise Conflict(
            "Idempotency-Key was already used with a different request",
            {"idempotency_key": ["already used with a different request"]},
        )
    return task_view(existing)


def repeat(first: Outcome | None, fingerprint: str) -> Outcome:
    """The outcome of a request repeating a key whose first request had outcome `first`."""
    if first is None or isinstance(first, DomainError):
        return first or Conflict("Idempotency-Key could not be settled", {})
    view, _created = first
    if view.identity_hash != fingerprint:
        return Conflict(
            "Idempotency-Key was already used with a different request",
            {"idempotency_key": ["already used with a different request"]},
        )
    return view, False


async def holders(plans: list[Plan]) -> dict[tuple[str, str] | None, Task]:
    """The tasks already holding these plans' keys (one query)."""
    keys = {p.req.idempotency_key for p in plans if p.req.idempotency_key}
    rows = await Task.filter(idempotency_key__in=list(keys))
    return {(r.idempotency_scope, r.idempotency_key or ""): r for r in rows}
