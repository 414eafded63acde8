"""Reads shared by the task and step services (and the GraphQL DataLoaders through them)."""

import base64
import binascii
import time
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from tortoise.expressions import Q

from server.db.models import StepEdge, Task, Transition, WorkflowStep
from server.db.rows import step_views, task_view, transition_view
from server.domain.errors import TaskNotFound, ValidationFailed
from server.domain.views import (
    StepView,
    TaskFilter,
    TaskPage,
    TaskView,
    TransitionEvent,
    TransitionView,
)


def parse_task_id(task_id: UUID | str) -> UUID:
    """A UUID, or TaskNotFound: a malformed id names no task (404, never 500)."""
    if isinstance(task_id, UUID):
        return task_id
    try:
        return UUID(str(task_id))
    except ValueError:
        raise TaskNotFound(task_id) from None


async def task_row(task_id: UUID | str) -> Task:
    """The task row or TaskNotFound."""
    row = await Task.get_or_none(id=parse_task_id(task_id))
    if row is None:
        raise TaskNotFound(task_id)
    return row


async def tasks_by_ids(task_ids: Sequence[UUID]) -> dict[UUID, TaskView]:
    """Views of these tasks (missing ids are absent), in one query."""
    rows = await Task.filter(id__in=list(task_ids))
    return {row.id: task_view(row) for row in rows}


async def steps_by_task(task_ids: Sequence[UUID]) -> dict[UUID, list[StepView]]:
    """Every step of these tasks, in position order, in two queries whatever the count."""
    ids = list(task_ids)
    rows = await WorkflowStep.filter(task_id__in=ids)
    edges = await StepEdge.filter(task_id__in=ids).values_list("from_step_id", "to_step_id")
    out: dict[UUID, list[StepView]] = {i: [] for i in ids}
    for view in step_views(rows, edges):
        out.setdefault(view.task_id, []).append(view)
    return out


async def transitions_by_task(
    task_ids: Sequence[UUID], after: int = 0
) -> dict[UUID, list[TransitionView]]:
    """History rows of these tasks (cursor-ordered), after an optional cursor."""
    rows = await Transition.filter(task_id__in=list(task_ids), id__gt=after).order_by("id")
    out: dict[UUID, list[TransitionView]] = {i: [] for i in task_ids}
    for row in rows:
        view = transition_view(row)
        out.setdefault(view.task_id, []).append(view)
    return out


async def transitions_in_namespace(
    namespace: str, after: int = 0, limit: int = 1000
) -> list[TransitionView]:
    """History rows of every task in `namespace` after a cursor, oldest first, at most `limit`."""
    rows = await (
        Transition.filter(task__namespace=namespace, id__gt=after).order_by("id").limit(limit)
    )
    return [transition_view(row) for row in rows]


async def events_since(since: datetime, limit: int) -> list[TransitionEvent]:
    """Events of every task written at or after `since`, cursor order, at most `limit` (the
    newest kept): what a process re-reads after it may have missed some on the broker."""
    rows = await (
        Transition.filter(created_at__gte=since)
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
    rows = await Transition.filter(step_id__in=list(step_ids)).order_by("id")
    out: dict[int, list[TransitionView]] = {i: [] for i in step_ids}
    for row in rows:
        view = transition_view(row)
        if view.step_id is not None:
            out.setdefault(view.step_id, []).append(view)
    return out


def _filtered(flt: TaskFilter) -> "Q":
    q = Q()
    if flt.namespace:
        q &= Q(namespace=flt.namespace)
    if flt.name:
        q &= Q(name=flt.name)
    if flt.version:
        q &= Q(version=flt.version)
    if flt.status:
        q &= Q(status=flt.status.value)
    return q


# Counting a million matching tasks costs more than reading the page itself, and an exact
# figure that large is out of date by the next request anyway: counts above LARGE_COUNT are
# reused by this process for COUNT_TTL seconds. Smaller counts are always exact (issue 7).
LARGE_COUNT = 10_000
COUNT_TTL = 5.0
_counts: dict[tuple[str | None, ...], tuple[int, float]] = {}


async def count_tasks(flt: TaskFilter) -> int:
    """How many tasks match the filter (see LARGE_COUNT for when it may be seconds old)."""
    key = (flt.namespace, flt.name, flt.version, flt.status.value if flt.status else None)
    cached = _counts.get(key)
    now = time.monotonic()
    if cached is not None and cached[1] > now:
        return cached[0]
    total = await Task.filter(_filtered(flt)).count()
    if total > LARGE_COUNT:
        if len(_counts) > 1000:
            _counts.clear()
        _counts[key] = (total, now + COUNT_TTL)
    else:
        _counts.pop(key, None)
    return total


async def list_tasks(flt: TaskFilter, *, page: int, per_page: int) -> TaskPage:
    """A page of tasks, newest first, with the total matching the filter.

    The offset is walked over ids only (an index-only scan on (created_at, id) when there is
    no filter), then just the page's rows are read: a page deep in a million tasks no longer
    reads every row before it.
    """
    q = _filtered(flt)
    total = await count_tasks(flt)
    ids = await (
        Task.filter(q)
        .order_by("-created_at", "-id")
        .offset((page - 1) * per_page)
        .limit(per_page)
        .values_list("id", flat=True)
    )
    page_ids: list[UUID] = list(ids)  # type: ignore[arg-type]  # flat values_list
    rows = {r.id: r for r in await Task.filter(id__in=page_ids)} if page_ids else {}
    items = tuple(task_view(rows[i]) for i in page_ids if i in rows)
    return TaskPage(items, total, page * per_page < total)


def encode_cursor(task: TaskView) -> str:
    """An opaque keyset cursor: stable while new tasks are created."""
    raw = f"{task.created_at.isoformat()}|{task.id}".encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    """Inverse of `encode_cursor`; ValidationFailed for anything else."""
    try:
        created, ident = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(created), UUID(ident)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed("Invalid cursor", {"after": ["is not a valid cursor"]}) from None


def older_than(after: str | None) -> Q:
    """Tasks after a keyset cursor in newest-first order: (created_at, id) < the cursor's.

    Written as `created_at <= c AND (created_at < c OR id < i)` rather than the plain OR, so
    that the first term bounds the index scan: with the OR alone PostgreSQL walked the index
    from the newest task and filtered every row up to the cursor, and a page deep in a million
    tasks took as long as reading all the ones before it (issue 7).
    """
    if not after:
        return Q()
    created, ident = decode_cursor(after)
    return Q(created_at__lte=created) & (Q(created_at__lt=created) | Q(id__lt=ident))


async def tasks_after(flt: TaskFilter, *, first: int, after: str | None) -> TaskPage:
    """Keyset page: `first` tasks older than the cursor, newest first."""
    q = _filtered(flt)
    total = await count_tasks(flt)
    rows = await Task.filter(q & older_than(after)).order_by("-created_at", "-id").limit(first + 1)
    return TaskPage(tuple(task_view(r) for r in rows[:first]), total, len(rows) > first)
