"""Flow control as seen from outside, read from the limit bookkeeping (`server.engine.limits`).

- Why a ready step with limits is not running: `concurrency_limited` (the key, and the tasks
  or steps holding its slots) or `rate_limited` (until the window has room). Asked only about
  tasks with a ready step.
- The current use of every declared limit per key (`GET /tasker/limits`, GraphQL `limits`).
"""

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from tortoise import Tortoise
from tortoise.functions import Count

from server.db.models import LimitKey, LimitSlot, WorkflowStep
from server.domain import rate_window
from server.domain.flow import CONCURRENCY_LIMITED, RATE_LIMITED, LimitUsage
from server.domain.states import StepState
from server.domain.templates import HandlerTemplate
from server.domain.views import BlockedReason
from server.engine.limits import HELD, RATE_LIMIT, TASK_LIMIT, in_use
from server.registry.handler_registry import HandlerRegistry


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
                f"waiting for a slot: {len(held)} of {row.limit} {what} of key '{row.key}' running",
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


async def limit_usage(
    templates: Sequence[HandlerTemplate], *, now: datetime, max_keys: int = 500
) -> list[LimitUsage]:
    """Current use per key of every limit these handlers declare: keys with a slot held or
    waited for, or a start in the rate window (at most `max_keys` per limit, busiest first).
    A declared limit no key uses yet shows one row with key '' and nothing in use."""
    conn = Tortoise.get_connection("default")
    found: list[LimitUsage] = []
    seen: set[str] = set()
    for t in templates:
        where = f"{t.namespace}/{t.name}"
        declared: list[tuple[str, str, str | None, int, float | None]] = []
        if t.concurrency is not None:
            declared.append((TASK_LIMIT, f"task:{where}", None, t.concurrency.limit, None))
        for s in t.steps:
            if s.concurrency is not None:
                declared.append(
                    ("step", f"step:{where}/{s.name}", s.name, s.concurrency.limit, None)
                )
            if s.rate_limit is not None:
                r = s.rate_limit
                declared.append((RATE_LIMIT, f"rate:{where}/{s.name}", s.name, r.limit, r.period))
        for kind, scope, step, limit, period in declared:
            if scope in seen:  # versions of one handler share their limits
                continue
            seen.add(scope)
            rows = await _usage_rows(conn, kind, scope, now, period, max_keys)
            if not rows:
                rows = [("", 0, 0, ())]
            found.extend(
                LimitUsage(
                    kind, t.namespace, t.name, step, key, limit, used, waiting, holders, period
                )
                for key, used, waiting, holders in rows
            )
    return found


async def _usage_rows(
    conn: Any, kind: str, scope: str, now: datetime, period: float | None, max_keys: int
) -> list[tuple[str, int, int, tuple[str, ...]]]:
    if kind == RATE_LIMIT:
        assert period is not None
        # A key's starts are kept on its row, in buckets (`server.domain.rate_window`).
        at = now.timestamp()
        kept = await LimitKey.filter(scope=scope).values_list("key", "starts")
        counts = Counter(
            {str(k): rate_window.in_window(rate_window.read(ss), at, period) for k, ss in kept}
        )
        return [(k, n, 0, ()) for k, n in counts.most_common(max_keys) if n]
    keys = await LimitSlot.filter(scope=scope).distinct().values_list("key", flat=True)
    rows: list[tuple[str, int, int, tuple[str, ...]]] = []
    for key in keys:
        held = await in_use(conn, scope, str(key), kind)
        waiting = await LimitSlot.filter(scope=scope, key=key).exclude(state=HELD).count()
        holders = tuple(str(h.task_id if kind == TASK_LIMIT else h.step_id) for h in held)
        if held or waiting:
            rows.append((str(key), len(held), waiting, holders))
    rows.sort(key=lambda r: (-r[1] - r[2], r[0]))
    return rows[:max_keys]


def handlers_named(registry: HandlerRegistry, handler: str | None) -> list[HandlerTemplate]:
    """The handlers a limits read is about: all, a namespace's (`payments`) or one
    (`payments/process_payment`); NamespaceNotFound / HandlerNotFound otherwise."""
    if not handler:
        return registry.all()
    namespace, _, name = handler.partition("/")
    if not name:
        registry.namespace(namespace)  # NamespaceNotFound for an unknown one
        return [t for t in registry.all() if t.namespace == namespace]
    registry.get(namespace, name)  # HandlerNotFound for an unknown one
    return [t for t in registry.all() if (t.namespace, t.name) == (namespace, name)]


async def limit_gauges() -> dict[str, tuple[int, int]]:
    """Per limit (scope), slots held and steps waiting or offered, over all keys, as recorded
    (a slot freed by a crash counts until the sweeper's next pass)."""
    rows = (
        await LimitSlot.all()
        .group_by("scope", "state")
        .annotate(n=Count("id"))
        .values("scope", "state", "n")
    )
    found: dict[str, tuple[int, int]] = {}
    for r in rows:
        held, waiting = found.get(r["scope"], (0, 0))
        if r["state"] == HELD:
            held += r["n"]
        else:
            waiting += r["n"]
        found[r["scope"]] = (held, waiting)
    return found
