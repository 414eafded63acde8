"""Step reads as plain SQL: every step of a few tasks, with their edges when asked.

The same reasoning as `server.db.reads` for tasks: a task page with its steps (GraphQL's
`tasks { steps }`, REST's `include_dependencies`) hydrated a Tortoise model per step, and the
query building and model instances cost several times what the database spends answering.
These go from one statement over a fixed column list straight to `StepView`s.
"""

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from server.db.reads import COLUMN_LIST as TASK_COLUMN_LIST
from server.db.reads import COLUMNS as TASK_COLUMNS
from server.db.reads import task_view_of, uuid_param
from server.db.sql import Query, Row, as_datetime, as_uuid, connection, json_value
from server.domain.states import StepState
from server.domain.views import StepView, TaskView

# The StepView fields up to `position`, in its order, in the table's column names, then the
# columns read into its later fields by name (`_view`).
COLUMNS = (
    "id",
    "task_id",
    "name",
    "status",
    "attempts",
    "retry_limit",
    "retryable",
    "skippable",
    "timeout_seconds",
    "inputs",
    "results",
    "last_error",
    "error_class",
    "next_attempt_at",
    "started_at",
    "completed_at",
    "created_at",
    "updated_at",
    "handler_class",
    "position",
    "wake_at",
    "waits_for",
    "skipped",
)
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM tasker_workflow_steps"
PAYLOADS = ("inputs", "results")
"""The JSON columns a step read can leave out: the largest, and decoded for every step."""
_SELECT_WITHOUT_PAYLOADS = (
    f"SELECT {', '.join('NULL' if c in PAYLOADS else c for c in COLUMNS)} "
    "FROM tasker_workflow_steps"
)
# A task's row, then its steps' rows, in one result: the task's columns are NULL in the steps'
# rows (a join would repeat the task's context in every step's row), and the steps' in the
# task's. `{id}` is the task id's placeholder.
_TASK_THEN_STEPS = (
    f"SELECT 0 AS part, {TASK_COLUMN_LIST}, {', '.join(f'NULL AS s_{c}' for c in COLUMNS)} "
    "FROM tasker_tasks t WHERE t.id = {id} UNION ALL "
    f"SELECT 1, {', '.join('NULL' for _ in TASK_COLUMNS)}, {', '.join(f's.{c}' for c in COLUMNS)} "
    "FROM tasker_workflow_steps s WHERE s.task_id = {id} ORDER BY part, s_position, s_id"
)
_STATES = {state.value: state for state in StepState}


def _json(value: Any) -> Any:
    # asyncpg hands jsonb over as text, SQLite stores it as text, except that a JSON number
    # comes back from SQLite as a number (the column's numeric affinity converts it).
    return json_value(value) if isinstance(value, str | bytes) else value


def _view(r: Row, task_id: UUID, parents: tuple[str, ...], children: tuple[str, ...]) -> StepView:
    created, updated = as_datetime(r[16]), as_datetime(r[17])
    assert created is not None and updated is not None  # NOT NULL columns
    return StepView(
        r[0],
        task_id,
        r[2],
        _STATES[r[3]],
        r[4],
        r[5],
        bool(r[6]),
        bool(r[7]),
        r[8],
        _json(r[9]),
        _json(r[10]),
        r[11],
        r[12],
        as_datetime(r[13]),
        as_datetime(r[14]),
        as_datetime(r[15]),
        created,
        updated,
        r[18],
        r[19],
        parents,
        children,
        # Positional, not by keyword: a named tuple's keywords cost a page of steps a tenth
        # of its decoding.
        as_datetime(r[20]),
        r[21],
        bool(r[22]),
    )


async def _read(q: Query, sql: str, task_ids: Sequence[UUID]) -> Sequence[Row]:
    """One task's rows are a read by key (`Query.point_records`); a page's go the usual way."""
    return await (q.point_records(sql) if len(task_ids) == 1 else q.records(sql))


def _in(q: Query, column: str, task_ids: Sequence[UUID]) -> str:
    if q.postgres:
        return f"{column} = ANY({q(list(task_ids))}::uuid[])"
    return f"{column} IN ({', '.join(q(str(i)) for i in task_ids)})"


async def steps_of_tasks(
    task_ids: Sequence[UUID], *, with_edges: bool = True, with_payloads: bool = True
) -> list[StepView]:
    """Every step of these tasks, ordered by position and id (each task's in its order,
    the tasks' interleaved: `steps_by_task` groups them); with their parents and
    children by name when `with_edges` (else those are left empty: one statement less); with
    their `inputs` and `results` when `with_payloads` (else those are None: for a reader that
    shows neither, such as a page of tasks with their steps' names and states)."""
    if not task_ids:
        return []
    q = Query(connection())
    select = _SELECT if with_payloads else _SELECT_WITHOUT_PAYLOADS
    where = _in(q, "task_id", task_ids)
    rows = await _read(q, f"{select} WHERE {where} ORDER BY position, id", task_ids)
    return await _views(q, rows, task_ids, with_edges)


async def task_with_steps(
    task_id: UUID, *, with_edges: bool = True
) -> tuple[TaskView, list[StepView]] | None:
    """The task and its steps (as `steps_of_tasks`), or None: the task and its steps in one
    statement, where reading them apart took two round trips."""
    q = Query(connection())
    records: Sequence[Any] = await q.point_records(
        _TASK_THEN_STEPS.format(id=uuid_param(q, task_id))
    )
    rows = [tuple(r) for r in records]
    if not rows or rows[0][0] != 0:
        return None
    steps_at = 1 + len(TASK_COLUMNS)
    task = task_view_of(rows[0][1:steps_at])
    return task, await _views(q, [r[steps_at:] for r in rows[1:]], [task_id], with_edges)


async def _views(
    q: Query, rows: Sequence[Row], task_ids: Sequence[UUID], with_edges: bool
) -> list[StepView]:
    """Views of step rows (`COLUMNS`, in order), with their edges read when `with_edges`."""
    parents: dict[int, list[str]] = {}
    children: dict[int, list[str]] = {}
    if with_edges and rows:
        names = {r[0]: r[2] for r in rows}
        e = Query(q.conn)
        sql = (
            "SELECT from_step_id, to_step_id FROM tasker_step_edges "
            f"WHERE {_in(e, 'task_id', task_ids)} ORDER BY id"
        )
        edges = await _read(e, sql, task_ids)
        for edge in edges:
            parent_id, child_id = int(edge[0]), int(edge[1])
            if parent_id in names and child_id in names:
                parents.setdefault(child_id, []).append(names[parent_id])
                children.setdefault(parent_id, []).append(names[child_id])
    # A task's steps share its id: made a UUID once per task, not once per step.
    task_ids_of: dict[Any, UUID] = {}
    views = []
    for r in rows:
        task_id = task_ids_of.get(r[1])
        if task_id is None:
            task_id = task_ids_of[r[1]] = as_uuid(r[1])
        views.append(_view(r, task_id, tuple(parents.get(r[0], ())), tuple(children.get(r[0], ()))))
    return views
