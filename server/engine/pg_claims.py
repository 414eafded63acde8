"""A claim statement's row read back as a `Claim`, its history queued as events.

The unlimited claim (`pg_sql.CLAIM`) and the limited one (`pg_flow_sql.CLAIM_LIMITED`) return
the same columns: the claimed step, its task, the history rows they wrote (a due retry, the
claim) and, when the claim started the task, that row's id.
"""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from server.db.sql import json_value
from server.engine.changes import Effects, StateChanges, TaskRef
from server.engine.pg_sql import Move
from server.engine.store import Claim, ClaimRequest


def stored_json(value: Any) -> Any:
    """A JSON column as asyncpg returns it (text for json, decoded for jsonb) decoded."""
    return json_value(value) if isinstance(value, str) else value


def claim_from_row(
    changes: StateChanges,
    row: dict[str, Any],
    req: ClaimRequest,
    start: Move,
    now: datetime,
    *,
    limited: bool = False,
) -> Claim:
    """The claim `row` describes; its history rows become events after this (committed)
    statement. `start` is the statement's task-start move, `now` the time it was given."""
    task = TaskRef(row["task_id"], row["namespace"], row["priority"])
    effects = Effects(now)
    for cursor, from_status, to_status, reason in stored_json(row["history"]) or []:
        effects.note(task, row["id"], row["name"], from_status, to_status, reason, cursor)
    if row["started_cursor"] is not None:  # this claim started the task, same statement
        effects.note(
            task, None, None, start.source, start.target, "step started", row["started_cursor"]
        )
    changes.after_commit(effects)
    return attempt_claim(
        row,
        req,
        step_id=row["id"],
        step_name=row["name"],
        task=task,
        handler_name=row["handler_name"],
        handler_version=row["version"],
        task_created_at=row["task_created_at"],
        parents_done_at=row["parents_done_at"],
        limited=limited,
    )


def attempt_claim(
    row: Mapping[str, Any],
    req: ClaimRequest,
    *,
    step_id: int,
    step_name: str,
    task: TaskRef,
    handler_name: str,
    handler_version: str,
    task_created_at: datetime | None = None,
    parents_done_at: datetime | None = None,
    limited: bool = False,
) -> Claim:
    """The claim of an attempt whose columns (handler class, attempt, retries, timeout, inputs,
    context, parents' results) `row` holds, as every claim statement (steps' and map items')
    returns them; the step, task and handler are given, as each statement reads them."""
    return Claim(
        step_id=step_id,
        step_name=step_name,
        task=task,
        handler_name=handler_name,
        handler_version=handler_version,
        handler_class=row["handler_class"],
        attempt=row["attempts"],
        retry_limit=row["retry_limit"],
        retryable=row["retryable"],
        timeout=row["timeout_seconds"] or req.default_timeout,
        inputs=stored_json(row["inputs"]),
        context=stored_json(row["context"]),
        parent_results=stored_json(row["parent_results"]) or {},
        lease_owner=req.lease_owner,
        task_created_at=task_created_at,
        parents_done_at=parents_done_at,
        limited=limited,
    )
