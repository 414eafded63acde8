"""Debounced creation: creations with one key inside a window collapse into one task.

A handler's `debounce: {key: context.document_id, seconds: 30}` (or a creation's
`debounce_key` + `debounce_seconds`, which win over it) makes every creation with the same
(handler, key) while a task for it is still pending and not yet started join that task: its
context becomes the latest creation's and its start moves to `seconds` after it. The first
creation answers 201, each joining one 200 with the surviving task.

Exactly one task per open window, however many creations race: the key is stored on the task
(`debounce_key`) under a partial unique index over pending tasks, so of concurrent inserts
one wins and the others, refused, join it. A joiner locks the task row (as every writer of a
task does) before moving its start, so joins serialise with each other and with claims.

The start is a delayed start (`run_at`): the root steps are sent again, delayed until the new
start, and stamped with it; the messages sent for earlier starts arrive early and are refused
by the claim, which checks `run_at`.
"""

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError

from server.db.models import Task, WorkflowStep
from server.db.rows import task_view
from server.domain.errors import ValidationFailed
from server.domain.inputs import MAX_DELAY_SECONDS, MAX_KEY_LENGTH, text_problem
from server.domain.states import StepState, TaskState
from server.domain.templates import HandlerTemplate
from server.domain.views import CreateTask, TaskView
from server.engine.changes import StateChanges, TaskRef

CONTEXT_PATH = "context."
STORED_KEY_LENGTH = 255
ATTEMPTS = 5
"""Insert races lost in a row before giving up (each loss means another creation won, so
the next join finds its task; more than a couple happen only if windows close meanwhile)."""


@dataclass(frozen=True, slots=True)
class Debounce:
    """A resolved debounce: the key's value (as stored) and the window."""

    key: str
    seconds: float


def debounce_of(template: HandlerTemplate, req: CreateTask) -> Debounce | None:
    """The request's debounce, its key resolved against the context; None when neither the
    request nor the handler asks for one. ValidationFailed (422) naming the field or path."""
    key, seconds = template.debounce or (None, None)
    if req.debounce_key is not None:
        key = req.debounce_key
    if req.debounce_seconds is not None:
        seconds = req.debounce_seconds
    if key is None and seconds is None:
        return None
    problems: dict[str, list[str]] = {}
    if key is None or not isinstance(key, str) or text_problem(key) or not key.strip():
        problems["debounce_key"] = [
            "required with debounce_seconds: a context path (e.g. context.document_id) or a "
            "constant"
        ]
    elif len(key) > MAX_KEY_LENGTH:
        problems["debounce_key"] = [f"must be at most {MAX_KEY_LENGTH} characters"]
    if seconds is None:
        problems["debounce_seconds"] = ["required with debounce_key"]
    elif (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not 0 < seconds <= MAX_DELAY_SECONDS
    ):
        problems["debounce_seconds"] = [
            f"must be a number of seconds, above 0, at most {MAX_DELAY_SECONDS}"
        ]
    if problems:
        raise ValidationFailed("Invalid debounce", problems)
    assert key is not None and seconds is not None
    return Debounce(_stored(resolve_key(key, req.context)), float(seconds))


def resolve_key(key: str, context: Any) -> str:
    """The key's value as text: a `context.` path's value, or the constant itself."""
    if not key.startswith(CONTEXT_PATH):
        return key
    value = context
    for part in key[len(CONTEXT_PATH) :].split("."):
        if not isinstance(value, dict) or part not in value:
            raise ValidationFailed(
                "Invalid debounce",
                {"debounce_key": [f"path '{key}' does not resolve in the task context"]},
            )
        value = value[part]
    if value is None:
        raise ValidationFailed(
            "Invalid debounce", {"debounce_key": [f"path '{key}' is null in the task context"]}
        )
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _stored(value: str) -> str:
    # The column is bounded; a long key is stored as its digest (equal keys, equal digests).
    if len(value) <= STORED_KEY_LENGTH:
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


class Debouncer:
    """Joins an open window's task, or creates the one task for it."""

    def __init__(self, changes: StateChanges) -> None:
        self.changes = changes

    async def create_or_join(
        self,
        template: HandlerTemplate,
        req: CreateTask,
        debounce: Debounce,
        insert: Callable[[datetime], Awaitable[TaskView]],
    ) -> tuple[TaskView, bool]:
        """(task, created): the open window's task, joined, or a new one made by `insert`
        with its start `debounce.seconds` from now."""
        for _ in range(ATTEMPTS):
            joined = await self.join(template, req, debounce)
            if joined is not None:
                return joined, False
            try:
                start = self.changes.clock.now() + timedelta(seconds=debounce.seconds)
                return await insert(start), True
            except IntegrityError:
                continue  # another creation with this key won the insert: join it
        raise IntegrityError("debounced creation kept losing races; try again")

    async def join(
        self, template: HandlerTemplate, req: CreateTask, debounce: Debounce
    ) -> TaskView | None:
        """Join the pending task of this key whose window is open: the latest context, the
        start moved to `seconds` from now. None when there is none (a window whose start has
        come is closed here: its key is released for the next task)."""
        async with self.changes.transaction() as tx:
            task = await (
                Task.filter(
                    namespace=template.namespace,
                    name=template.name,
                    debounce_key=debounce.key,
                    status=TaskState.PENDING.value,
                )
                .select_for_update()
                .using_db(tx.conn)
                .first()
            )
            if task is None:
                return None
            if task.run_at is None or task.run_at <= tx.now:
                await Task.filter(id=task.id).using_db(tx.conn).update(debounce_key=None)
                return None
            start = tx.now + timedelta(seconds=debounce.seconds)
            await (
                Task.filter(id=task.id)
                .using_db(tx.conn)
                .update(context=req.context, run_at=start, updated_at=tx.now)
            )
            roots: list[int] = await (  # type: ignore[assignment]
                WorkflowStep.filter(task_id=task.id, status=StepState.PENDING.value, waiting_on=0)
                .exclude(dispatched_at__isnull=True)
                .using_db(tx.conn)
                .values_list("id", flat=True)
            )
            if roots:
                await (
                    WorkflowStep.filter(id__in=roots).using_db(tx.conn).update(dispatched_at=start)
                )
                tx.dispatch_after_commit(roots, debounce.seconds, task.priority)
            await tx.record_task_event(
                TaskRef(task.id, task.namespace, task.priority),
                TaskState.PENDING,
                "debounced",
                {"run_at": start.isoformat()},
            )
            fresh = await Task.filter(id=task.id).using_db(tx.conn).first()
            assert fresh is not None  # locked above
            return task_view(fresh)
