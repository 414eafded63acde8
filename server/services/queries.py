"""Reads shared by the task and step services (and the GraphQL DataLoaders through them)."""

import base64
import binascii
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from server.db import page_anchors, reads, step_reads
from server.db.models import Transition
from server.db.rows import transition_view
from server.domain.errors import TaskNotFound, ValidationFailed
from server.domain.item_moves import ITEM_REASONS
from server.domain.views import (
    StepView,
    TaskFilter,
    TaskPage,
    TaskSlice,
    TaskView,
    TransitionEvent,
    TransitionView,
)
from server.infra.task_counts import COUNTS, FilterKey

ReadCounting = Callable[[bool], Awaitable[tuple[list[TaskView], int | None]]]
"""A read of a page of tasks that, when told to, counts the filter's matches in its own
statement (None when it had no row to carry the count)."""


def parse_task_id(task_id: UUID | str) -> UUID:
    """A UUID, or TaskNotFound: a malformed id names no task (404, never 500)."""
    if isinstance(task_id, UUID):
        return task_id
    try:
        return UUID(str(task_id))
    except ValueError:
        raise TaskNotFound(task_id) from None


async def find_task(task_id: UUID | str) -> TaskView:
    """The task or TaskNotFound."""
    found = await reads.task_by_id(parse_task_id(task_id))
    if found is None:
        raise TaskNotFound(task_id)
    return found


async def find_task_with_steps(
    task_id: UUID | str, *, with_edges: bool = True
) -> tuple[TaskView, list[StepView]]:
    """The task and its steps in position order (as `steps_by_task`), or TaskNotFound."""
    found = await step_reads.task_with_steps(parse_task_id(task_id), with_edges=with_edges)
    if found is None:
        raise TaskNotFound(task_id)
    return found


async def tasks_by_ids(task_ids: Sequence[UUID]) -> dict[UUID, TaskView]:
    """Views of these tasks (missing ids are absent), in one query."""
    return {view.id: view for view in await reads.tasks_by_ids(task_ids)}


async def steps_by_task(
    task_ids: Sequence[UUID], *, with_edges: bool = True, with_payloads: bool = True
) -> dict[UUID, list[StepView]]:
    """Every step of these tasks, in position order, in two statements whatever the count;
    in one without `with_edges` (their `parents` and `children` are then left empty);
    without `with_payloads`, their `inputs` and `results` are None (`steps_of_tasks`)."""
    ids = list(task_ids)
    out: dict[UUID, list[StepView]] = {i: [] for i in ids}
    reads = step_reads.steps_of_tasks(ids, with_edges=with_edges, with_payloads=with_payloads)
    for view in await reads:
        out.setdefault(view.task_id, []).append(view)
    return out


def _task_moves(**where: Any) -> QuerySet[Transition]:
    """History rows of tasks and steps, without their map items' rows: those are read per step
    (`item_transitions`); a map of 10,000 items writes over 20,000 (`server.domain.item_moves`)."""
    return Transition.filter(Q(reason__isnull=True) | ~Q(reason__in=ITEM_REASONS), **where)


async def item_transitions(step_id: int) -> list[TransitionView]:
    """The history rows of a map step's items, oldest first (`metadata.item` is the index)."""
    rows = await Transition.filter(step_id=step_id, reason__in=ITEM_REASONS).order_by("id")
    return [transition_view(row) for row in rows]


async def transitions_by_task(
    task_ids: Sequence[UUID], after: int = 0
) -> dict[UUID, list[TransitionView]]:
    """History rows of these tasks (cursor-ordered), after an optional cursor."""
    rows = await _task_moves(task_id__in=list(task_ids), id__gt=after).order_by("id")
    out: dict[UUID, list[TransitionView]] = {i: [] for i in task_ids}
    for row in rows:
        view = transition_view(row)
        out.setdefault(view.task_id, []).append(view)
    return out


async def transitions_in_namespace(
    namespace: str, after: int = 0, limit: int = 1000
) -> list[TransitionView]:
    """History rows of every task in `namespace` after a cursor, oldest first, at most `limit`."""
    rows = await _task_moves(task__namespace=namespace, id__gt=after).order_by("id").limit(limit)
    return [transition_view(row) for row in rows]


async def events_since(since: datetime, limit: int) -> list[TransitionEvent]:
    """Events of every task written at or after `since`, cursor order, at most `limit` (the
    newest kept): what a process re-reads after it may have missed some on the broker."""
    rows = await (
        _task_moves(created_at__gte=since)
        .order_by("-id")
        .limit(limit)
        .values(
            "id",
            "task_id",
            "task__namespace",
            "step_id",
            "step_name",
            "from_status",
            "to_status",
            "reason",
            "created_at",
        )
    )
    return [
        TransitionEvent(
            cursor=r["id"],
            task_id=str(r["task_id"]),
            namespace=r["task__namespace"],
            step_id=r["step_id"],
            step_name=r["step_name"],
            from_status=r["from_status"],
            to_status=r["to_status"],
            reason=r["reason"],
            occurred_at=r["created_at"],
        )
        for r in reversed(rows)
    ]


async def transitions_by_step(step_ids: Sequence[int]) -> dict[int, list[TransitionView]]:
    """History rows of these steps, oldest first."""
    rows = await _task_moves(step_id__in=list(step_ids)).order_by("id")
    out: dict[int, list[TransitionView]] = {i: [] for i in step_ids}
    for row in rows:
        view = transition_view(row)
        if view.step_id is not None:
            out.setdefault(view.step_id, []).append(view)
    return out


def _count_key(flt: TaskFilter) -> FilterKey:
    return (flt.namespace, flt.name, flt.version, flt.status.value if flt.status else None)


async def list_tasks(flt: TaskFilter, *, page: int, per_page: int) -> TaskPage:
    """A page of tasks, newest first, with the total matching the filter."""
    start, offset = await page_anchors.seek(flt, (page - 1) * per_page)
    items, total = await _with_total(
        flt,
        lambda count: reads.page(flt, offset=offset, limit=per_page, count=count, start=start),
    )
    return TaskPage(tuple(items), total, page * per_page < total)


async def _with_total(flt: TaskFilter, read: ReadCounting) -> tuple[list[TaskView], int]:
    """What `read` returns, and the total matching the filter: counted in the read's own
    statement unless a recent large count is reused (`task_counts`)."""
    key = _count_key(flt)
    total = COUNTS.recall(key, lambda: reads.count(flt))
    items, counted = await read(total is None)
    if total is None:
        total = counted if counted is not None else await reads.count(flt)
        COUNTS.remember(key, total)
    return items, total


def encode_cursor(task: TaskView) -> str:
    """An opaque keyset cursor: stable while new tasks are created."""
    raw = f"{task.created_at.isoformat()}|{task.id}".encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    """Inverse of `encode_cursor`; ValidationFailed for anything else."""
    try:
        created, ident = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        moment = datetime.fromisoformat(created)
        # In UTC, as it was written: an offset PostgreSQL cannot hold is no 500.
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC)
        return moment, UUID(ident)
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed("Invalid cursor", {"after": ["is not a valid cursor"]}) from None


async def tasks_after(
    flt: TaskFilter, *, first: int, after: str | None, count: bool = True
) -> TaskSlice:
    """Keyset page: `first` tasks older than the cursor, newest first; with `count`, the
    total matching the filter, in the same statement."""
    cursor = decode_cursor(after) if after else None

    def read(counting: bool) -> Awaitable[tuple[list[TaskView], int | None]]:
        return reads.older_than(flt, cursor, limit=first + 1, count=counting)

    total: int | None = None
    if count:
        rows, total = await _with_total(flt, read)
    else:
        rows, _ = await read(False)
    return TaskSlice(tuple(rows[:first]), len(rows) > first, total)
