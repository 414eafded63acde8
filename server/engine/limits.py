"""Flow control in the claim: concurrency slots per key, sliding-window rate limits, hand-off.

A step with limits carries them in `flow` (keys resolved at creation, `step_flow`), so steps
without limits pay nothing. Both stores claim a limited step through the portable claim,
which calls `admit` inside the claim's transaction, after the step is known runnable:

- the limits' key rows are locked (`server.engine.limit_keys`; SQLite runs one write
  transaction at a time), in sorted order so two claims never deadlock;
- a concurrency limit counts the `held` rows of its key whose step is still in progress under
  the same lease (so a slot is freed with the lease, whatever ended it), plus the slots
  `offered` to other waiting steps; a handler limit counts the tasks still active;
- a rate limit counts the starts of its key in the last `period`.

Refused for a slot, the step is recorded `waiting` and is not claimed (no worker thread held;
its message is spent). When a holder completes or fails (`release`, in the recording
transaction) the freed slots are `offered` to the waiting steps of the key — highest priority
first, then the oldest — which are dispatched after commit: the hand-off is a message, not a
poll. Refused by a rate limit, the step is sent one delayed message for when the window opens.
The sweeper (`sweep_limits`) drops rows that no longer count and re-offers slots freed by a
crash, a cancel or a lost message. Every change to a key's slot rows ends with `recount`, which
keeps the key row's counters (what the PostgreSQL single-statement claim tests) exact.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from tortoise.expressions import Q

from server.db.models import LimitSlot, Task, WorkflowStep
from server.domain import rate_window
from server.domain.flow import resolve_key
from server.domain.states import ACTIVE_TASK_STATES, StepState
from server.domain.templates import HandlerTemplate, StepTemplate
from server.engine.changes import StateChanges, Transaction
from server.engine.limit_keys import (
    HELD,
    OFFERED,
    WAITING,
    kept_starts,
    lock_keys,
    record_start,
    recount,
)
from server.infra.metrics import RATE_LIMITED

__all__ = ["HELD", "OFFERED", "WAITING", "lock_keys"]
TASK_LIMIT, STEP_LIMIT, RATE_LIMIT = "task", "step", "rate"
PARKED = timedelta(days=1)
"""How far ahead a waiting step's dispatch stamp is set: the sweeper's idle re-dispatch leaves
it alone (its hand-off is a message; `sweep_limits` re-offers a lost one)."""
_ACTIVE = [s.value for s in ACTIVE_TASK_STATES]


MAX_LIMITS = 3
"""The most limits one step has (`step_flow`: its handler's concurrency, its own, its rate)."""


def step_flow(
    template: HandlerTemplate, step: StepTemplate, context: Any, priority: int
) -> dict[str, Any] | None:
    """The limits of one step of a new task, keys resolved (KeyMissing if a path is absent)."""
    where = f"{template.namespace}/{template.name}"
    limits: list[dict[str, Any]] = []
    if template.concurrency is not None:
        c = template.concurrency
        limits.append({
            "kind": TASK_LIMIT, "scope": f"task:{where}", "limit": c.limit,
            "key": resolve_key(c.key, context),
        })  # fmt: skip
    if step.concurrency is not None:
        c = step.concurrency
        limits.append({
            "kind": STEP_LIMIT, "scope": f"step:{where}/{step.name}", "limit": c.limit,
            "key": resolve_key(c.key, context),
        })  # fmt: skip
    if step.rate_limit is not None:
        r = step.rate_limit
        limits.append({
            "kind": RATE_LIMIT, "scope": f"rate:{where}/{step.name}", "limit": r.limit,
            "period": r.period, "key": resolve_key(r.key, context),
        })  # fmt: skip
    return {"priority": priority, "limits": limits} if limits else None


def handler_key(template: HandlerTemplate, context: Any) -> str | None:
    """The key of the handler's concurrency limit for this context (None: no limit)."""
    if template.concurrency is None:
        return None
    return resolve_key(template.concurrency.key, context)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a limited step was not claimed: `concurrency_limited` or `rate_limited`."""

    code: str
    scope: str
    key: str
    until: datetime | None = None


_STEP_COUNTS = """SELECT
 (SELECT count(*) FROM tasker_limit_slots ls JOIN tasker_workflow_steps ws ON ws.id = ls.step_id
   WHERE ls.scope = $1 AND ls."key" = $2 AND ls.state = $3 AND ws.status = $4
     AND ws.lease_owner = ls.lease_owner) AS held,
 0 AS mine,
 (SELECT count(*) FROM tasker_limit_slots
   WHERE scope = $5 AND "key" = $6 AND state = $7 AND step_id <> $8) AS offered"""
_TASK_COUNTS = """SELECT
 (SELECT count(*) FROM tasker_limit_slots ls JOIN tasker_tasks t ON t.id = ls.task_id
   WHERE ls.scope = $1 AND ls."key" = $2 AND ls.state = $3 AND t.status IN ($4, $5)) AS held,
 (SELECT count(*) FROM tasker_limit_slots ls JOIN tasker_tasks t ON t.id = ls.task_id
   WHERE ls.scope = $6 AND ls."key" = $7 AND ls.state = $8 AND ls.task_id = $9
     AND t.status IN ($10, $11)) AS mine,
 (SELECT count(*) FROM tasker_limit_slots
   WHERE scope = $12 AND "key" = $13 AND state = $14 AND step_id <> $15) AS offered"""


async def _counts(
    tx: Transaction, lim: dict[str, Any], step_id: int, task_id: UUID
) -> tuple[int, int, int]:
    """(slots that count, slots this task holds, slots offered to other steps) of a key, in
    one round trip: the claim path of a limit that does not bind must stay cheap."""
    scope, key = lim["scope"], lim["key"]
    postgres = tx.conn.capabilities.dialect == "postgres"
    task: Any = task_id if postgres else str(task_id)
    if lim["kind"] == TASK_LIMIT:
        sql = _TASK_COUNTS
        args: list[Any] = [scope, key, HELD, *_ACTIVE, scope, key, HELD, task, *_ACTIVE]
    else:
        sql = _STEP_COUNTS
        args = [scope, key, HELD, StepState.IN_PROGRESS.value]
    args += [scope, key, OFFERED, step_id]
    if not postgres:
        sql = re.sub(r"\$\d+", "?", sql)  # every parameter is used once, in order
    row = (await tx.conn.execute_query_dict(sql, args))[0]
    return int(row["held"]), int(row["mine"]), int(row["offered"])


async def in_use(conn: Any, scope: str, key: str, kind: str) -> list[LimitSlot]:
    """The held rows of a key that still count: their step runs under the same lease (a step
    limit), or their task is active (a task limit)."""
    rows = await LimitSlot.filter(scope=scope, key=key, state=HELD).using_db(conn)
    if not rows:
        return []
    if kind == TASK_LIMIT:
        active = set(
            await Task.filter(id__in=[r.task_id for r in rows], status__in=_ACTIVE)
            .using_db(conn)
            .values_list("id", flat=True)
        )
        return [r for r in rows if r.task_id in active]
    running = dict(
        await WorkflowStep.filter(
            id__in=[r.step_id for r in rows], status=StepState.IN_PROGRESS.value
        )
        .using_db(conn)
        .values_list("id", "lease_owner")
    )
    return [
        r for r in rows if r.lease_owner is not None and running.get(r.step_id) == r.lease_owner
    ]


async def admit(
    tx: Transaction, step_id: int, task_id: UUID, flow: dict[str, Any], lease_owner: str
) -> Refusal | None:
    """Take the step's slots and record its start, or refuse it (recording why)."""
    limits: list[dict[str, Any]] = flow.get("limits", [])
    priority = int(flow.get("priority", 2))
    await lock_keys(tx, [f"{lim['scope']}|{lim['key']}" for lim in limits])
    take: list[dict[str, Any]] = []
    windows: dict[str, rate_window.Buckets] = {}
    for lim in limits:
        scope, key, kind = lim["scope"], lim["key"], lim["kind"]
        if kind == RATE_LIMIT:
            until, windows[scope] = await _rate_refusal(tx, lim)
            if until is not None:
                RATE_LIMITED.labels(scope.removeprefix("rate:")).inc()
                delay = (until - tx.now).total_seconds()
                tx.dispatch_after_commit([step_id], delay, limited=[step_id])
                await WorkflowStep.filter(id=step_id).using_db(tx.conn).update(dispatched_at=until)
                return Refusal("rate_limited", scope, key, until)
            continue
        held, mine, others = await _counts(tx, lim, step_id, task_id)
        if mine:
            continue  # the task holds its slot since its first step started
        if held + others >= lim["limit"]:
            await _wait(tx, lim, step_id, task_id, priority)
            await _recount_all(tx, limits)
            return Refusal("concurrency_limited", scope, key)
        take.append(lim)
    # A wait or an offer of this step, for any of its limits, is over.
    await LimitSlot.filter(step_id=step_id).exclude(state=HELD).using_db(tx.conn).delete()
    for lim in limits:
        if lim["kind"] == RATE_LIMIT:
            await record_start(
                tx, lim["scope"], lim["key"], windows[lim["scope"]], lim["period"], lim["limit"]
            )
    for lim in take:
        await _slot_row(tx, lim, step_id, task_id, priority, HELD, lease_owner)
    await _recount_all(tx, limits)
    return None


async def _recount_all(tx: Transaction, limits: list[dict[str, Any]]) -> None:
    for lim in limits:
        if lim["kind"] != RATE_LIMIT:
            await recount(tx, lim["scope"], lim["key"])


async def _slot_row(
    tx: Transaction,
    lim: dict[str, Any],
    step_id: int,
    task_id: UUID,
    priority: int,
    state: str,
    lease_owner: str | None = None,
) -> None:
    """A step's row for a key of a concurrency limit: holding a slot, or waiting for one."""
    await LimitSlot.create(
        using_db=tx.conn,
        scope=lim["scope"],
        key=lim["key"],
        step_id=step_id,
        task_id=task_id,
        state=state,
        lease_owner=lease_owner,
        limit=lim["limit"],
        priority=priority,
        created_at=tx.now,
    )


async def _rate_refusal(
    tx: Transaction, lim: dict[str, Any]
) -> tuple[datetime | None, rate_window.Buckets]:
    """(None when a start fits the sliding window, else when the window next has room; the
    key's kept buckets)."""
    kept = await kept_starts(tx, lim["scope"], lim["key"])
    room = rate_window.room_at(kept, tx.now.timestamp(), float(lim["period"]), int(lim["limit"]))
    return (None if room is None else datetime.fromtimestamp(room, UTC)), kept


async def _wait(
    tx: Transaction, lim: dict[str, Any], step_id: int, task_id: UUID, priority: int
) -> None:
    """Record the step as waiting (keeping its place if it already waited)."""
    row = await (
        LimitSlot.filter(scope=lim["scope"], key=lim["key"], step_id=step_id)
        .exclude(state=HELD)
        .using_db(tx.conn)
        .first()
    )
    if row is None:
        await _slot_row(tx, lim, step_id, task_id, priority, WAITING)
    elif row.state != WAITING:
        await LimitSlot.filter(id=row.id).using_db(tx.conn).update(state=WAITING)
    await WorkflowStep.filter(id=step_id).using_db(tx.conn).update(dispatched_at=tx.now + PARKED)


async def release(tx: Transaction, step_id: int, task_id: UUID, task_active: bool) -> None:
    """The step no longer runs (and its task may have finished): free what it held and offer
    the freed slots to the keys' waiting steps."""
    rows = LimitSlot.filter(state=HELD).using_db(tx.conn)
    freed = await rows.filter(step_id=step_id).exclude(scope__startswith="task:")
    if not task_active:
        freed += await rows.filter(task_id=task_id, scope__startswith="task:")
    if not freed:
        return
    keys = sorted({(r.scope, r.key) for r in freed})
    # Under the keys' locks, as claims are: a claim refused at this moment has recorded its
    # wait before we look for waiters, so the freed slot is not left for the sweeper.
    await lock_keys(tx, [f"{scope}|{key}" for scope, key in keys])
    await LimitSlot.filter(id__in=[r.id for r in freed]).using_db(tx.conn).delete()
    for scope, key in keys:
        await offer(tx, scope, key)


async def offer(tx: Transaction, scope: str, key: str) -> int:
    """Offer the key's free slots to its waiting steps, best first; returns how many."""
    kind = TASK_LIMIT if scope.startswith("task:") else STEP_LIMIT
    waiting = (
        await LimitSlot.filter(scope=scope, key=key, state=WAITING)
        .using_db(tx.conn)
        .order_by("-priority", "created_at", "id")
        .limit(50)
    )
    chosen: list[LimitSlot] = []
    if waiting:
        held = await in_use(tx.conn, scope, key, kind)
        offered = (
            await LimitSlot.filter(scope=scope, key=key, state=OFFERED).using_db(tx.conn).count()
        )
        room = waiting[0].limit - len(held) - offered
        chosen = waiting[: max(room, 0)]
    if chosen:
        # The offer is stamped on the slot row, not on the waiter's step row: a writer of
        # another task's step would have to lock that task first (the lock order).
        await (
            LimitSlot.filter(id__in=[r.id for r in chosen])
            .using_db(tx.conn)
            .update(state=OFFERED, offered_at=tx.now)
        )
        sent = [r.step_id for r in chosen]
        tx.dispatch_after_commit(sent, limited=sent)
    await recount(tx, scope, key)
    return len(chosen)


async def sweep_limits(changes: StateChanges, offer_timeout: timedelta, batch: int = 200) -> int:
    """The safety net: drop rows that no longer count (their step ran out of its lease or
    finished, their task ended), take back offers whose message was lost, and offer the slots
    this freed. Returns the steps offered a slot."""
    now = changes.clock.now()
    keys = await LimitSlot.all().distinct().limit(batch).values_list("scope", "key")
    offered = 0
    for scope, key in keys:
        async with changes.transaction() as tx:
            await lock_keys(tx, [f"{scope}|{key}"])
            kind = TASK_LIMIT if scope.startswith("task:") else STEP_LIMIT
            held = await LimitSlot.filter(scope=scope, key=key, state=HELD).using_db(tx.conn)
            live = {r.id for r in await in_use(tx.conn, scope, key, kind)}
            stale = [r.id for r in held if r.id not in live]
            if stale:
                await LimitSlot.filter(id__in=stale).using_db(tx.conn).delete()
            await _drop_finished_waiters(tx, scope, key)
            await _take_back_lost_offers(tx, scope, key, now - offer_timeout)
            offered += await offer(tx, scope, key)
    return offered


async def _drop_finished_waiters(tx: Transaction, scope: str, key: str) -> None:
    """Waiting or offered rows whose step can no longer start (cancelled, done)."""
    rows = await (
        LimitSlot.filter(scope=scope, key=key)
        .exclude(state=HELD)
        .using_db(tx.conn)
        .values_list("id", "step_id")
    )
    if not rows:
        return
    startable = {StepState.PENDING.value, StepState.ERROR.value}
    alive = set(
        await WorkflowStep.filter(
            id__in=[s for _, s in rows], status__in=sorted(startable), task__status__in=_ACTIVE
        )
        .using_db(tx.conn)
        .values_list("id", flat=True)
    )
    gone = [i for i, s in rows if s not in alive]
    if gone:
        await LimitSlot.filter(id__in=gone).using_db(tx.conn).delete()


async def _take_back_lost_offers(tx: Transaction, scope: str, key: str, cutoff: datetime) -> None:
    """Offers sent before `cutoff` and never taken up (the message was lost) wait again."""
    stale = LimitSlot.filter(scope=scope, key=key, state=OFFERED).using_db(tx.conn)
    await stale.filter(Q(offered_at__lt=cutoff) | Q(offered_at__isnull=True)).update(
        state=WAITING, offered_at=None
    )
