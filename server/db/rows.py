"""ORM rows -> domain views. The only place that knows both shapes."""

import json
from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from server.db.models import Task, Transition, WorkerHeartbeat, WorkflowStep
from server.db.reads import COLUMNS, task_view_of
from server.domain.readiness import StepSnapshot
from server.domain.states import StepState
from server.domain.views import StepView, TaskView, TransitionView, WorkerView


def json_text(value: Any) -> str:
    """Any JSON value, encoded, for writing a Tortoise JSONField.

    The field takes a Python `str` as JSON that is already encoded, so a plain string value
    ("done") was refused as invalid JSON and the request failed with a 500; encoding every
    value first stores strings, objects and null alike.
    """
    return json.dumps(value)


def task_view(row: Task) -> TaskView:
    """A task row as a view."""
    return task_view_of([getattr(row, c) for c in COLUMNS], json_decoded=True)


def step_views(rows: Sequence[WorkflowStep], edges: Iterable[tuple[int, int]]) -> list[StepView]:
    """Step rows of one or more tasks as views, with parents and children by name."""
    names = {row.id: row.name for row in rows}
    parents: dict[int, list[str]] = {}
    children: dict[int, list[str]] = {}
    for parent_id, child_id in edges:
        if parent_id in names and child_id in names:
            parents.setdefault(child_id, []).append(names[parent_id])
            children.setdefault(parent_id, []).append(names[child_id])
    ordered = sorted(rows, key=lambda r: (str(r.task_id), r.position, r.id))  # type: ignore[attr-defined]
    return [_step_view(r, parents.get(r.id, []), children.get(r.id, [])) for r in ordered]


def _step_view(row: WorkflowStep, parents: list[str], children: list[str]) -> StepView:
    return StepView(
        id=row.id,
        task_id=row.task_id,  # type: ignore[attr-defined]
        name=row.name,
        status=StepState(row.status),
        attempts=row.attempts,
        retry_limit=row.retry_limit,
        retryable=row.retryable,
        skippable=row.skippable,
        timeout_seconds=row.timeout_seconds,
        inputs=row.inputs,
        results=row.results,
        last_error=row.last_error,
        error_class=row.error_class,
        next_attempt_at=row.next_attempt_at,
        started_at=row.started_at,
        completed_at=row.completed_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        handler_class=row.handler_class,
        position=row.position,
        parents=tuple(parents),
        children=tuple(children),
        wake_at=row.wake_at,
        waits_for=row.waits_for,
        skipped=bool(row.skipped),
    )


def snapshots(steps: Sequence[StepView]) -> list[StepSnapshot]:
    """What readiness needs from each step."""
    return [
        StepSnapshot(
            s.name,
            s.status,
            s.next_attempt_at,
            s.parents,
            s.last_error,
            attempts=s.attempts,
            retry_limit=s.retry_limit,
            retryable=s.retryable,
            error_class=s.error_class,
            wake_at=s.wake_at,
            waits_for=s.waits_for,
        )
        for s in steps
    ]


def transition_view(row: Transition) -> TransitionView:
    """A history row as a view."""
    task_id: UUID = row.task_id  # type: ignore[attr-defined]
    metadata: dict[str, Any] = row.metadata or {}
    return TransitionView(
        id=row.id,
        task_id=task_id,
        step_id=row.step_id,  # type: ignore[attr-defined]
        step_name=row.step_name,
        from_status=row.from_status,
        to_status=row.to_status,
        reason=row.reason,
        metadata=metadata,
        occurred_at=row.created_at,
    )


def worker_view(row: WorkerHeartbeat) -> WorkerView:
    """A heartbeat row as a view."""
    return WorkerView(row.worker_id, row.hostname, row.pid, row.started_at, row.last_seen_at)
