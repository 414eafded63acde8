"""The safety net: reclaim the steps of dead workers and expired leases, re-dispatch idle ready
steps, finalize stuck tasks.

Runs periodically in every worker process (and the embedded server). Several sweepers at once
are harmless: every effect goes through compare-and-set, and dispatch messages are idempotent.
Each sweep first asks one statement which of its parts could act on anything
(`server.engine.sweep_probe`) and runs only those: an idle sweep is that one query. The
analytics roll-up has its own slower cadence, busy or idle.
"""

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise.expressions import Q

from server.db.analytics_rollup import roll_recent
from server.db.models import StepEdge, Task, WorkflowStep
from server.db.planner_stats import refresh_planner_stats
from server.db.sql import Query, Row, as_uuid, connection, state, states
from server.domain.readiness import CLAIMABLE_TASK_STATES
from server.domain.states import ACTIVE_TASK_STATES, DONE_STEP_STATES, StepState
from server.engine.changes import StateChanges, TaskRef
from server.engine.limits import sweep_limits
from server.engine.map_sweep import reap_items, resend_items, settle_idle_maps
from server.engine.progress import advance
from server.engine.runner import StepRunner
from server.engine.store import Claim, Outcome, lease_holder
from server.engine.sweep_probe import SweepWork, probe
from server.engine.workers import WorkerRegistry

log = logging.getLogger(__name__)

CLAIMABLE = [s.value for s in CLAIMABLE_TASK_STATES]
"""Tasks whose ready steps may be re-sent: only theirs can be claimed."""
_WAITING = (StepState.PENDING, StepState.ERROR)
"""The steps the idle re-dispatch sends: waiting to start, or for their retry."""
ROLL_UP_EVERY = 60.0
"""Seconds between the sweeper's analytics roll-ups: a slot settles minutes after it ends and
a report rolls up what it needs itself, so rolling on every sweep bought nothing."""


@dataclass(frozen=True, slots=True)
class SweepReport:
    """What one sweep did."""

    reaped: int = 0
    """Steps taken back from dead workers or expired leases."""
    redispatched: int = 0
    finalized: int = 0
    rolled_up: int = 0
    offered: int = 0
    """Waiting steps offered a limit slot that a crash, a cancel or a lost message freed."""


class Sweeper:
    """One pass of the safety net at a time, in batches."""

    def __init__(
        self,
        changes: StateChanges,
        runner: StepRunner,
        workers: WorkerRegistry,
        *,
        redispatch_after: float,
        dead_after: float,
        batch: int = 500,
    ) -> None:
        self.changes = changes
        self.runner = runner
        self.workers = workers
        self.dead_after = timedelta(seconds=dead_after)
        self.redispatch_after = timedelta(seconds=redispatch_after)
        self._backlog_since: float | None = None
        self._rolled_at: float | None = None
        self.batch = batch

    async def sweep(self) -> SweepReport:
        """Run once every part of the sweep that has something to look at (`probe`)."""
        work = await probe()
        rolled_up = await self.roll_up_analytics()
        if not work.any:
            return SweepReport(rolled_up=rolled_up)
        return await self._sweep(work, rolled_up)

    async def _sweep(self, work: SweepWork, rolled_up: int) -> SweepReport:
        reaped = redispatched = finalized = offered = 0
        if work.running_steps:
            reaped += await self.reclaim_from_dead_workers() + await self.reap_expired_leases()
        if work.running_items:
            reaped += await self.reap_map_items()
        if work.active_tasks:
            redispatched += await self.redispatch_idle()
        else:
            # Nothing claimable: a backlog seen before is not one a lost message hides behind.
            self._backlog_since = None
        if work.running_steps:
            redispatched += await self.resend_map_items()
        if work.active_tasks:
            finalized = await self.finalize_stuck()
        if work.limit_slots:
            offered = await sweep_limits(self.changes, self.redispatch_after)
        # Busy sweeps only: an idle system's tables do not change.
        await refresh_planner_stats()
        return SweepReport(reaped, redispatched, finalized, rolled_up, offered)

    async def roll_up_analytics(self, *, every: float = ROLL_UP_EVERY) -> int:
        """Roll up the analytics hours of the last day as they settle, at most once per
        `every` seconds, so that reports seldom have to (they would do it themselves
        otherwise; failing here must not stop a sweep)."""
        now = time.monotonic()
        if self._rolled_at is not None and now - self._rolled_at < every:
            return 0
        self._rolled_at = now
        try:
            return await roll_recent(self.changes.clock)
        except Exception:
            log.warning("analytics rollup failed; reports will roll up on demand", exc_info=True)
            return 0

    async def reclaim_from_dead_workers(self) -> int:
        """Running steps of workers whose heartbeats stopped go down the retry path at once.

        A worker writes a heartbeat every few seconds whatever its steps are doing, so a
        silent one is dead (killed, its host gone) or frozen; its steps need not wait out
        their leases (the step timeout, minutes). A live worker's long step is never taken:
        its heartbeats go on. A frozen worker that wakes after this finds its lease replaced,
        and its late result is discarded like any lost lease's.
        """
        running: list[tuple[int, str | None]] = await WorkflowStep.filter(
            status=StepState.IN_PROGRESS.value
        ).values_list("id", "lease_owner")
        holders = {lease_holder(lease) for _, lease in running if lease}
        dead = await self.workers.dead_among(holders, self.dead_after)
        if not dead:
            return 0
        orphans = [i for i, lease in running if lease and lease_holder(lease) in dead]
        rows = await WorkflowStep.filter(
            id__in=orphans[: self.batch], status=StepState.IN_PROGRESS.value
        ).select_related("task")
        reclaimed = await self._take_back(rows, "worker lost: heartbeats stopped")
        if reclaimed:
            log.warning("reclaimed %d steps from dead workers %s", reclaimed, sorted(dead))
        return reclaimed

    async def reap_expired_leases(self) -> int:
        """Steps whose lease expired go down the retry path with reason `worker_lost`."""
        now = self.changes.clock.now()
        rows = await (
            WorkflowStep.filter(status=StepState.IN_PROGRESS.value, lease_expires_at__lt=now)
            .select_related("task")
            .limit(self.batch)
        )
        reaped = await self._take_back(rows, "worker lost: lease expired")
        if reaped:
            log.warning("reclaimed %d steps from lost workers", reaped)
        return reaped

    async def _take_back(self, rows: list[WorkflowStep], why: str) -> int:
        """Record a lost attempt for each row, as its holder would have: compare-and-set on
        the lease it holds, so a step claimed again meanwhile is left alone."""
        taken = 0
        for row in rows:
            claim = Claim(
                step_id=row.id,
                step_name=row.name,
                task=TaskRef(row.task.id, row.task.namespace, row.task.priority),
                handler_name=row.task.name,
                handler_version=row.task.version,
                handler_class=row.handler_class,
                attempt=row.attempts,
                retry_limit=row.retry_limit,
                retryable=row.retryable,
                timeout=row.timeout_seconds or 0,
                inputs=row.inputs,
                context=None,
                parent_results={},
                lease_owner=row.lease_owner or "",
            )
            lost = Outcome(error=why, error_class="WorkerLost")
            if await self.runner.record(claim, lost) != "discarded":
                taken += 1
        return taken

    async def reap_map_items(self) -> int:
        """Map items of dead workers or expired leases go down their retry path."""
        if self.runner.items is None:
            return 0
        now = self.changes.clock.now()
        return await reap_items(self.runner.items, self.workers, now, self.dead_after, self.batch)

    async def resend_map_items(self) -> int:
        """Map items whose message was lost (or refused for want of a slot) are sent again,
        and waiting map steps with no item in flight are settled."""
        now = self.changes.clock.now()
        sent = await resend_items(self.changes, now - self.redispatch_after, now, self.batch)
        if self.runner.items is not None:
            sent += await settle_idle_maps(self.runner.items, self.batch)
        return sent

    async def redispatch_idle(self) -> int:
        """Nudge ready steps whose message was lost, and retries whose delayed message was.

        Skipped while messages are queued: a step idle behind a backlog has not lost its
        message, and re-sending it would only grow the backlog with duplicates.
        """
        if self.changes.dispatcher.backlog() > 0:
            # ...but a queue that never drains must not hide a lost message for ever: at most
            # every few windows, re-send anyway.
            started = self._backlog_since or time.monotonic()
            self._backlog_since = started
            if time.monotonic() - started < 5 * self.redispatch_after.total_seconds():
                return 0
        self._backlog_since = None
        now = self.changes.clock.now()
        cutoff = now - self.redispatch_after
        # A step is stamped `dispatched_at` in the same transaction that makes it ready, so a
        # NULL stamp means "never ready yet"; only stale stamps can hide a lost message.
        # A paused task's steps are refused by the claim; resuming re-sends them itself.
        idle = Q(
            dispatched_at__lt=cutoff,
            task__paused_at__isnull=True,
            task__handler_paused_at__isnull=True,
        )
        pending: list[int] = await (  # type: ignore[assignment]
            WorkflowStep.filter(idle, status=StepState.PENDING.value, task__status__in=CLAIMABLE)
            .limit(self.batch)
            .values_list("id", flat=True)
        )
        ready: list[int] = []
        if pending:
            edges = await StepEdge.filter(to_step_id__in=pending).values_list(
                "to_step_id", "from_step__status"
            )
            blocked = {
                child for child, status in edges if StepState(status) not in DONE_STEP_STATES
            }
            ready = [i for i in pending if i not in blocked]
        due: list[int] = await (  # type: ignore[assignment]
            WorkflowStep.filter(
                status=StepState.ERROR.value, next_attempt_at__lt=cutoff, task__status__in=CLAIMABLE
            )
            .filter(idle)
            .limit(self.batch)
            .values_list("id", flat=True)
        )
        lanes = await self._stamp(ready + due, now) if ready or due else {}
        # Each in its task's priority lane, the high ones sent first.
        for priority in sorted(lanes, reverse=True):
            self.changes.send(sorted(lanes[priority]), priority)
        return sum(len(ids) for ids in lanes.values())

    async def _stamp(self, step_ids: list[int], now: datetime) -> dict[int, list[int]]:
        """Stamp these steps sent now; they by their task's priority lane. Only those still
        waiting to run, and never a row a claim or a completion holds (skipped, not waited
        for: this takes no task lock first, so waiting could deadlock with them). Such a step
        is being claimed and needs no nudge; stamping a running one would also move its row
        under its completion, which then discards the result."""
        q = Query(connection())
        waiting = states(*_WAITING)
        rows: Sequence[Any]
        if q.postgres:
            rows = await q.records(
                f"UPDATE tasker_workflow_steps s SET dispatched_at = {q(now)} FROM tasker_tasks t"
                " WHERE s.id IN (SELECT id FROM tasker_workflow_steps"
                f" WHERE id = ANY({q(step_ids)}::bigint[]) AND status IN {waiting}"
                " FOR NO KEY UPDATE SKIP LOCKED) AND t.id = s.task_id RETURNING s.id, t.priority"
            )
        else:  # one writer at a time: nothing else holds a row
            rows = await WorkflowStep.filter(
                id__in=step_ids, status__in=[s.value for s in _WAITING]
            ).values_list("id", "task__priority")
            await WorkflowStep.filter(id__in=[r[0] for r in rows]).update(dispatched_at=now)
        lanes: dict[int, list[int]] = {}
        for row in rows:
            lanes.setdefault(int(row[1]), []).append(int(row[0]))
        return lanes

    async def finalize_stuck(self) -> int:
        """Re-examine active tasks that have been quiet for a while with nothing in flight."""
        now = self.changes.clock.now()
        rows = await _quiet_tasks(now - self.redispatch_after * 3, now, self.batch)
        finalized = 0
        for row in rows:
            task_id, namespace = as_uuid(row[0]), str(row[1])
            async with self.changes.transaction() as tx:
                status = await tx.lock_task(task_id)
                if status is None:
                    continue
                # Stamp it so a long-running task is re-examined once per window, not per sweep.
                await Task.filter(id=task_id).using_db(tx.conn).update(updated_at=tx.now)
                before = len(tx.events)
                await advance(tx, TaskRef(task_id, namespace), status)
                finalized += len(tx.events) > before
        return finalized


async def _quiet_tasks(quiet: datetime, now: datetime, limit: int) -> Sequence[Row]:
    """(id, namespace) of active tasks unchanged since `quiet` with no step in flight.

    In flight: running, waiting in the queue (sent: `dispatched_at` set, a delayed start or a
    step waiting for a limit's slot too) or parked in a sleep or signal wait until after `now`.
    Such a task is moving, or another part of the sweep looks after it; re-examining them
    cost a transaction per task per window, all through a backlog older than the window.
    NOT EXISTS through the steps' task index, per candidate, up to `limit`.
    """
    q = Query(connection())
    pending, running = state(StepState.PENDING), state(StepState.IN_PROGRESS)
    return await q.records(
        "SELECT t.id, t.namespace FROM tasker_tasks t"
        f" WHERE t.status IN {states(*ACTIVE_TASK_STATES)}"
        f" AND t.updated_at < {q(quiet)} AND NOT EXISTS (SELECT 1 FROM tasker_workflow_steps s"
        f" WHERE s.task_id = t.id AND (s.status = {running} OR (s.status = {pending} AND"
        f" (s.dispatched_at IS NOT NULL OR s.wake_at > {q(now)})))) LIMIT {int(limit)}"
    )
