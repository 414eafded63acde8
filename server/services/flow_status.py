"""Why a ready step with limits is not running: `concurrency_limited` (the key, and the tasks
or steps holding its slots) or `rate_limited` (until the window has room), read from the
limit bookkeeping (`server.engine.limits`). Asked only about tasks with a ready step."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from server.db.models import LimitSlot, WorkflowStep
from server.domain.flow import CONCURRENCY_LIMITED, RATE_LIMITED
from server.domain.states import StepState
from server.domain.views import BlockedReason
from server.engine.limits import HELD, RATE_LIMIT, TASK_LIMIT, in_use
from tortoise import Tortoise


async def limit_reasons(
    task_ids: Sequence[UUID], now: datetime
) -> dict[UUID, dict[str, BlockedReason]]:
    """Per task, per step name: the flow-control reason that replaces `queued`."""
    if not task_ids:
        return {}
    conn = Tortoise.get_connection("default")
    steps = await WorkflowStep.filter(
        task_id__in=list(task_ids),
        flow__not_isnull=True,
        status__in=[StepState.PENDING.value, StepState.ERROR.value],
    ).values("id", "task_id", "name", "flow", "dispatched_at")
    if not steps:
        return {}
    found: dict[UUID, dict[str, BlockedReason]] = {}
    waits = await LimitSlot.filter(step_id__in=[s["id"] for s in steps]).exclude(state=HELD)
    waiting = {w.step_id: w for w in waits}
    for s in steps:
        task_id = UUID(str(s["task_id"]))
        row = waiting.get(s["id"])
        if row is not None:
            kind = TASK_LIMIT if row.scope.startswith("task:") else "step"
            held = await in_use(conn, row.scope, row.key, kind)
            holders = tuple(str(h.task_id if kind == TASK_LIMIT else h.step_id) for h in held)
            what = "tasks" if kind == TASK_LIMIT else "steps"
            found.setdefault(task_id, {})[s["name"]] = BlockedReason(
                CONCURRENCY_LIMITED,
                f"waiting for a slot: {len(held)} of {row.limit} {what} of key "
                f"'{row.key}' running",
                key=row.key,
                holders=holders,
            )
            continue
        stamp: datetime | None = s["dispatched_at"]
        if stamp is not None and stamp > now and _rated(s["flow"]):
            found.setdefault(task_id, {})[s["name"]] = BlockedReason(
                RATE_LIMITED, f"rate limited until {stamp.isoformat()}", until=stamp
            )
    return found


def _rated(flow: Any) -> bool:
    limits = flow.get("limits", []) if isinstance(flow, dict) else []
    return any(lim.get("kind") == RATE_LIMIT for lim in limits)
