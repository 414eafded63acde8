"""On PostgreSQL, a chunk of new tasks written in ONE statement, outside any transaction.

`creation_rows.write_tasks` takes four statements (tasks, steps, edges, history) inside a
transaction: with BEGIN and COMMIT, six round trips for a single POST. Here the same rows go
in one statement of data-modifying CTEs: the steps' ids come back from their own insert and
the edges and "created" rows take them by (task, step name). A statement is atomic without a
transaction, and the rows are the ones `write_tasks` writes (the same row builders).

It serves the common case only: no idempotency key (a key that another task holds would
leave that task's steps without their task, where `write_tasks` skips the whole task) and
nothing bypassed (bypassing moves steps after the insert). Anything else, and a chunk too
large for one statement's parameters, goes the transaction's way.
"""

from typing import Any

from server.db.bulk import MAX_PARAMETERS, insert_sql
from server.db.models import Task, WorkflowStep
from server.domain.states import StepState
from server.engine.changes import Transaction
from server.services.creation_rows import Plan, after_insert, step_rows, task_row
from server.services.pausing import ALL_VERSIONS, paused_sql


def fits(plans: list[Plan]) -> bool:
    """Whether these plans can be written by `write_at_once`."""
    if any(p.req.idempotency_key or p.req.bypass_steps for p in plans):
        return False
    steps = sum(len(p.template.steps) for p in plans)
    edges = sum(len(p.template.graph.edges) for p in plans)
    # Generously: ~30 columns a task, ~16 a step, 3 an edge.
    return 30 * len(plans) + 16 * steps + 3 * edges + 3 <= MAX_PARAMETERS


def _paused_when(all_versions: str) -> str:
    """A new task's `handler_paused_at`: its value (now) when its handler version is paused
    (`pausing.paused_sql`), else NULL; `{field}` is the row's own value of a field. Asked in
    the insert itself: a query of its own was a round trip per creation."""
    # Cast as the insert types them: a parameter must have one type wherever it is used.
    typed = ("{namespace}::varchar", "{name}::varchar", "{version}::varchar")
    return f"(SELECT {{handler_paused_at}}::timestamptz WHERE {paused_sql(*typed, all_versions)})"


async def write_at_once(tx: Transaction, plans: list[Plan]) -> None:
    """Insert the plans' tasks, steps, edges and "created" history rows in one statement
    (`tx.conn` need not be in a transaction), created paused when their handler is, and
    queue their after-commit effects."""
    now = tx.now
    values: list[Any] = [ALL_VERSIONS]
    for plan in plans:
        plan.paused_at = now  # kept by the insert only where the handler is paused
    paused = {"handler_paused_at": _paused_when("$1::text")}
    tasks = insert_sql(Task, [task_row(p, now) for p in plans], values, True, paused)
    steps = insert_sql(WorkflowStep, [r for p in plans for r in step_rows(p, now)], values, True)
    edges = [(p.id_text, a, b) for p in plans for a, b in p.template.graph.edges]
    rows = []
    for task_id, parent, child in edges:
        values += [task_id, parent, child]
        n = len(values)
        rows.append(f"(${n - 2}::uuid, ${n - 1}::text, ${n}::text)")
    values += [[p.id_text for p in plans], StepState.PENDING.value, now]
    order, pending, at = len(values) - 2, len(values) - 1, len(values)
    edge_cte = (
        f"""edges AS (
    INSERT INTO tasker_step_edges (task_id, from_step_id, to_step_id)
    SELECT e.task_id, p.id, c.id FROM (VALUES {", ".join(rows)}) AS e(task_id, parent, child)
      JOIN steps p ON p.task_id = e.task_id AND p.name = e.parent
      JOIN steps c ON c.task_id = e.task_id AND c.name = e.child
), """
        if rows
        else ""
    )
    # The task's "created" row first, then its steps' in template order, task after task:
    # the order `write_tasks` writes them in (events follow the history ids).
    sql = f"""WITH tasks AS ({tasks} RETURNING id, handler_paused_at
), steps AS ({steps} RETURNING id, task_id, name, position
), {edge_cte}history AS (
    INSERT INTO tasker_transitions
           (task_id, step_id, step_name, to_status, reason, metadata, created_at)
    SELECT x.task_id, x.step_id, x.step_name, ${pending}::text, 'created', '{{}}'::jsonb, ${at}
      FROM (SELECT id AS task_id, NULL::bigint AS step_id, NULL::text AS step_name,
                   -1 AS position FROM tasks
            UNION ALL SELECT task_id, id, name, position FROM steps) AS x
     ORDER BY array_position(${order}::uuid[], x.task_id), x.position
 RETURNING id, task_id, step_id, step_name
)
SELECT id AS step_id, task_id, name AS step_name, NULL::bigint AS history_id FROM steps
UNION ALL
SELECT step_id, task_id, step_name, id FROM history
UNION ALL
SELECT NULL, id, NULL, NULL FROM tasks WHERE handler_paused_at IS NOT NULL"""
    result = await tx.conn.execute_query_dict(sql, values)
    paused_ids = {
        str(r["task_id"]) for r in result if r["step_id"] is None and r["history_id"] is None
    }
    for plan in plans:
        plan.paused_at = now if plan.id_text in paused_ids else None
    step_ids = {
        (str(r["task_id"]), r["step_name"]): int(r["step_id"])
        for r in result
        if r["history_id"] is None and r["step_id"] is not None
    }
    history = [{**r, "id": r["history_id"]} for r in result if r["history_id"] is not None]
    after_insert(tx, plans, step_ids, history)
