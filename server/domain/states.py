"""Task and step states and the allowed-move tables (Tasker's vocabulary).

Every status change in the system is checked against these tables: by `server.engine.changes`
for each move, and once per statement for the PostgreSQL store's (`server.engine.pg_sql`).
States missing from a table's keys are terminal.
"""

from collections.abc import Mapping
from enum import StrEnum
from typing import Final

from server.domain.errors import InvalidTransition


class TaskState(StrEnum):
    """Lifecycle of a task."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETE = "complete"
    ERROR = "error"
    CANCELLED = "cancelled"
    RESOLVED_MANUALLY = "resolved_manually"


class StepState(StrEnum):
    """Lifecycle of a workflow step."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETE = "complete"
    ERROR = "error"
    CANCELLED = "cancelled"
    RESOLVED_MANUALLY = "resolved_manually"


_T = TaskState
_S = StepState

# Tasker's task table, plus `error -> cancelled` so a failed task can be abandoned explicitly.
TASK_MOVES: Final[Mapping[TaskState, frozenset[TaskState]]] = {
    _T.PENDING: frozenset({_T.IN_PROGRESS, _T.CANCELLED, _T.ERROR, _T.COMPLETE}),
    _T.IN_PROGRESS: frozenset({_T.PENDING, _T.COMPLETE, _T.ERROR, _T.CANCELLED}),
    _T.ERROR: frozenset({_T.PENDING, _T.RESOLVED_MANUALLY, _T.CANCELLED}),
}

# Tasker's step table, plus `error -> cancelled` (a step backing off can be cancelled), and
# `pending -> complete` for a step skipped without running (`engine.conditions.skip_step`),
# `pending -> error` already serving a condition that cannot be evaluated.
STEP_MOVES: Final[Mapping[StepState, frozenset[StepState]]] = {
    _S.PENDING: frozenset(
        {_S.IN_PROGRESS, _S.ERROR, _S.CANCELLED, _S.RESOLVED_MANUALLY, _S.COMPLETE}
    ),
    _S.IN_PROGRESS: frozenset({_S.PENDING, _S.COMPLETE, _S.ERROR, _S.CANCELLED}),
    _S.ERROR: frozenset({_S.PENDING, _S.RESOLVED_MANUALLY, _S.CANCELLED}),
}

TERMINAL_TASK_STATES: Final = frozenset({_T.COMPLETE, _T.CANCELLED, _T.RESOLVED_MANUALLY})
ACTIVE_TASK_STATES: Final = frozenset({_T.PENDING, _T.IN_PROGRESS})
DONE_STEP_STATES: Final = frozenset({_S.COMPLETE, _S.RESOLVED_MANUALLY})
"""Step states that satisfy a dependency."""


def can_move_task(current: TaskState, target: TaskState) -> bool:
    """True when the task table allows `current -> target`."""
    return target in TASK_MOVES.get(current, frozenset())


def can_move_step(current: StepState, target: StepState) -> bool:
    """True when the step table allows `current -> target`."""
    return target in STEP_MOVES.get(current, frozenset())


def check_task_move(current: TaskState, target: TaskState) -> None:
    """Raise InvalidTransition unless the task may move from `current` to `target`."""
    if not can_move_task(current, target):
        raise InvalidTransition("task", current.value, target.value)


def check_step_move(current: StepState, target: StepState) -> None:
    """Raise InvalidTransition unless the step may move from `current` to `target`."""
    if not can_move_step(current, target):
        raise InvalidTransition("step", current.value, target.value)
