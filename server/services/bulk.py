"""Bulk actions: cancel, retry or re-run every task a filter matches, in short transactions.

The tasks are selected oldest first (`created_at`, `id`), at most `limit` per call; when more
match, `next_cursor` (the id of the last one selected) continues after it. Each chunk of
`CHUNK` tasks is one transaction that locks its tasks in one statement (in id order) and applies
the same rule as the single action (`task_rules.cancel_many`, `task_rules.retry_in`,
`forks.rerun`): a 100,000-task action is many short transactions, never a long one. A task
the rule refuses (retrying a task that is not in error, cancelling a completed one) is left
out of the answer, not an error; an empty match answers count 0.

Bulk re-run needs `from_step` (the same step of every matched task's handler): a fork from
"the first failed step" would re-run different parts of different tasks under one command.
"""

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from tortoise.expressions import Q

from server.db.models import Task
from server.domain.errors import DomainError, InvalidTransition, TaskNotFound, ValidationFailed
from server.domain.inputs import InputProblems, aware_time, text_filter_problems
from server.domain.states import TaskState
from server.domain.views import Rerun
from server.engine import bulk_moves
from server.engine.changes import StateChanges, TaskRef, Transaction
from server.services import forks
from server.services.creation import TaskCreator
from server.services.task_rules import CANCELLABLE, cancel_many, retry_in

CHUNK = 100
"""Tasks per transaction. Each task costs the single action's statements (lock, move, history,
`advance`: about ten); 100 keeps a transaction well under a second on a quiet server (the
bench measured ~15 ms a task on a loaded 2-core machine, so 250 held one for ~10 s)."""
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class BulkFilter:
    """Which tasks a bulk action applies to (every given field must match)."""

    namespace: str | None = None
    name: str | None = None
    version: str | None = None
    status: str | None = None
    created_after: datetime | str | None = None
    """ISO 8601 text with a time zone, or an aware datetime."""
    created_before: datetime | str | None = None
    ids: Sequence[str] | None = None


@dataclass(frozen=True, slots=True)
class BulkResult:
    """What a bulk action changed: the affected ids (new task ids, for a re-run)."""

    count: int
    ids: list[str]
    next_cursor: str | None = None


ChunkRule = Callable[[Transaction, list[tuple[TaskRef, TaskState]]], Awaitable[list[UUID]]]
"""Applies an action to a chunk of locked tasks; answers the ids it changed."""


async def _cancel_chunk(tx: Transaction, tasks: list[tuple[TaskRef, TaskState]]) -> list[UUID]:
    """Those already cancelled or complete are left out; the rest in one `cancel_many`."""
    cancellable = [(ref, status) for ref, status in tasks if status in CANCELLABLE]
    await cancel_many(tx, cancellable)
    return [ref.id for ref, _ in cancellable]


async def _retry_chunk(tx: Transaction, tasks: list[tuple[TaskRef, TaskState]]) -> list[UUID]:
    """Tasks not in error are left out."""
    retried: list[UUID] = []
    for ref, status in tasks:
        try:
            await retry_in(tx, ref, status)
        except InvalidTransition:
            continue
        retried.append(ref.id)
    return retried


AfterCommit = Callable[[Sequence[UUID]], Awaitable[None]]
"""Runs after a chunk's transaction commits, with the ids of the tasks it changed."""


class BulkActions:
    """Cancel, retry and re-run tasks by filter."""

    def __init__(
        self,
        changes: StateChanges,
        creator: TaskCreator,
        after_cancel: AfterCommit | None = None,
    ) -> None:
        self.changes = changes
        self.creator = creator
        self.after_cancel = after_cancel
        """What a single cancel does after its commit (cascade to children, fail a waiting
        parent step), applied to each chunk of cancelled tasks."""

    async def cancel(
        self, flt: BulkFilter, limit: int | None = None, cursor: str | None = None
    ) -> BulkResult:
        """Cancel the matched tasks (those already cancelled or complete are left out), their
        unfinished children with them, as a single cancel does."""
        return await self._apply(flt, limit, cursor, _cancel_chunk, self.after_cancel)

    async def retry(
        self, flt: BulkFilter, limit: int | None = None, cursor: str | None = None
    ) -> BulkResult:
        """Retry the failed steps of the matched tasks in error (others are left out)."""
        return await self._apply(flt, limit, cursor, _retry_chunk)

    async def rerun(
        self, flt: BulkFilter, req: Rerun, limit: int | None = None, cursor: str | None = None
    ) -> BulkResult:
        """Fork each matched finished task from `req.from_step`; answers the new tasks' ids."""
        problems = InputProblems()
        problems.text("from_step", req.from_step)
        problems.json("context", req.context)
        if not req.from_step:
            problems.details["from_step"] = ["is required"]
        if req.context is not None and not isinstance(req.context, dict):
            # Refused once for the call: per task it would leave every task out, count 0.
            problems.add("context", "must be a JSON object")
        if problems:
            raise ValidationFailed("Invalid bulk rerun", problems.details)
        selected, next_cursor = await self._select(flt, limit, cursor)
        created: list[str] = []
        for task_id, _ in selected:
            try:
                view = await forks.rerun(self.creator, task_id, req)
            except DomainError:
                continue  # still running, or its handler has no such step: left out
            created.append(str(view.id))
        return BulkResult(len(created), created, next_cursor)

    async def _apply(
        self,
        flt: BulkFilter,
        limit: int | None,
        cursor: str | None,
        rule: ChunkRule,
        after_commit: AfterCommit | None = None,
    ) -> BulkResult:
        selected, next_cursor = await self._select(flt, limit, cursor)
        done: list[str] = []
        for start in range(0, len(selected), CHUNK):
            namespaces = dict(selected[start : start + CHUNK])
            async with self.changes.transaction() as tx:
                locked = await bulk_moves.lock_tasks(tx, list(namespaces))
                refs = [(TaskRef(i, namespaces[i]), status) for i, status in locked.items()]
                changed = await rule(tx, refs)
            done.extend(str(i) for i in changed)
            if after_commit is not None:
                await after_commit(changed)
        return BulkResult(len(done), done, next_cursor)

    async def _select(
        self, flt: BulkFilter, limit: int | None, cursor: str | None
    ) -> tuple[list[tuple[UUID, str]], str | None]:
        size = _limit(limit)
        query = Task.filter(**_terms(flt))
        if cursor is not None:
            at, after = await _cursor(cursor)
            query = query.filter(Q(created_at__gt=at) | Q(created_at=at, id__gt=after))
        rows = (
            await query.order_by("created_at", "id")
            .limit(size + 1)
            .values_list("id", "namespace", "created_at")
        )
        more = len(rows) > size
        rows = rows[:size]
        next_cursor = str(rows[-1][0]) if more else None
        return [(_uuid(r[0]), str(r[1])) for r in rows], next_cursor


def _limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed("Invalid limit", {"limit": [f"must be 1 to {MAX_LIMIT}"]})
    return limit


def _terms(flt: BulkFilter) -> dict[str, Any]:
    problems = text_filter_problems(
        {"namespace": flt.namespace, "name": flt.name, "version": flt.version}
    )
    terms: dict[str, Any] = {
        k: v for k, v in (("namespace", flt.namespace), ("name", flt.name),
                          ("version", flt.version)) if v
    }  # fmt: skip
    if flt.status:
        if flt.status not in {s.value for s in TaskState}:
            problems["status"] = [f"unknown status '{flt.status}'"]
        terms["status"] = flt.status
    for key, value, op in (
        ("created_after", flt.created_after, "gt"),
        ("created_before", flt.created_before, "lt"),
    ):
        if value is None:
            continue
        moment = aware_time(value)
        if moment is None:
            problems[key] = ["must be an ISO 8601 time with a time zone"]
        else:
            terms[f"created_at__{op}"] = moment
    if flt.ids is not None and any("\x00" in str(i) for i in flt.ids):
        problems["ids"] = ["must not contain a NUL character"]
    if flt.ids is not None:  # a text that is no task id matches no task, as in a list filter
        terms["id__in"] = [u for u in map(_as_uuid, flt.ids) if u is not None]
    if problems:
        raise ValidationFailed("Invalid filter", problems)
    return terms


def _as_uuid(text: str) -> UUID | None:
    try:
        return UUID(str(text))
    except ValueError:
        return None


async def _cursor(cursor: str) -> tuple[datetime, UUID]:
    """A cursor is the id of the last task of the previous call: go on after its place."""
    after = _as_uuid(cursor)
    if after is None:
        raise ValidationFailed("Invalid cursor", {"cursor": ["must be a next_cursor (task id)"]})
    found = await Task.filter(id=after).values_list("created_at", flat=True)
    if not found:
        raise TaskNotFound(after)
    return found[0], after  # type: ignore[return-value]


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))
