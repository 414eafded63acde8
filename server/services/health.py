"""Health use cases: liveness, readiness (database and broker, each within a timeout) and a
detailed status (work by state, retries, backlog, the connection pool, live workers).

Readiness fails when a dependency does not answer in time. The status is unhealthy when a
dependency is down, when ready work has no live worker to run it, or when steps are stuck
(ready, due or holding an expired lease for longer than `stuck_after`); it says which.
"""

import asyncio
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from server.db import health as db
from server.domain.states import StepState
from server.domain.views import WorkerView
from server.engine.workers import WorkerRegistry
from server.infra.metrics import ScrapeGauges
from server.infra.ports import Clock
from server.services.flow_status import limit_gauges

UNFINISHED = (StepState.PENDING, StepState.IN_PROGRESS, StepState.ERROR)
"""The states counted as unfinished work on `/metrics` (tasks and steps spell them alike)."""


@dataclass(frozen=True, slots=True)
class Check:
    """One dependency probe."""

    name: str
    ok: bool
    latency_ms: float | None = None
    error: str | None = None
    mode: str | None = None
    """The broker's: `embedded` (an in-process queue) or `redis`."""


@dataclass(frozen=True, slots=True)
class Readiness:
    """Whether this process can serve: every check passed."""

    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """All checks passed."""
        return all(c.ok for c in self.checks)

    @property
    def failed(self) -> tuple[Check, ...]:
        """The checks that did not pass."""
        return tuple(c for c in self.checks if not c.ok)


@dataclass(frozen=True, slots=True)
class BacklogView:
    """Steps that could run now, the stuck ones, and how long the oldest has waited."""

    ready_steps: int
    stuck_steps: int
    oldest_ready_step_age_seconds: float | None


@dataclass(frozen=True, slots=True)
class PoolView:
    """This process's database connection pool, as far as the driver tells."""

    dialect: str
    size: int
    max: int
    idle: int | None = None
    min: int | None = None


@dataclass(frozen=True, slots=True)
class LiveWorker:
    """A worker with a recent heartbeat, and how long ago that was."""

    worker: WorkerView
    last_seen_seconds_ago: float


@dataclass(frozen=True, slots=True)
class WorkState:
    """The work in the database and the workers running it."""

    tasks: Mapping[str, int]
    steps: Mapping[str, int]
    retries: Mapping[str, int]
    """Errored steps: backing_off, due, exhausted."""
    backlog: BacklogView
    database: PoolView
    workers: tuple[LiveWorker, ...]
    live_within_seconds: float
    """How recent a heartbeat must be for its worker to count as live."""


@dataclass(frozen=True, slots=True)
class StatusReport:
    """The detailed status; `reasons` says why when it is not healthy. `work` is None when
    the database could not be read."""

    healthy: bool
    reasons: tuple[str, ...]
    checked_at: datetime
    checks: tuple[Check, ...]
    work: WorkState | None = None


class HealthService:
    """Probes dependencies and summarises the work in the database."""

    def __init__(
        self,
        clock: Clock,
        workers: WorkerRegistry,
        *,
        broker_url: str | None,
        timeout: float = 2.0,
        stuck_after: float = 300.0,
    ) -> None:
        self.clock = clock
        self.workers = workers
        self.broker_url = broker_url
        self.timeout = timeout
        self.stuck_after = timedelta(seconds=stuck_after)

    async def ready(self) -> Readiness:
        """Database and broker, probed concurrently, each bounded by the timeout."""
        checks = await asyncio.gather(self._database(), self._broker())
        return Readiness(tuple(checks))

    async def status(self) -> StatusReport:
        """Everything `ready` checks, plus the state of the work and of the workers."""
        readiness = await self.ready()
        now = self.clock.now()
        reasons = [f"{c.name} unreachable: {c.error}" for c in readiness.failed]
        if not readiness.checks[0].ok:  # nothing below can be read without the database
            return StatusReport(False, tuple(reasons), now, readiness.checks)
        tasks = await db.counts_by_status("tasker_tasks")
        steps = await db.counts_by_status("tasker_workflow_steps")
        retries = await db.retry_counts(now)
        backlog = await db.backlog(now, now - self.stuck_after)
        live = await self.workers.live()
        if backlog.ready and not live:
            reasons.append(f"no live worker while {backlog.ready} steps are ready to run")
        if backlog.stuck:
            reasons.append(
                f"{backlog.stuck} steps stuck for more than "
                f"{self.stuck_after.total_seconds():g}s (ready, due or with an expired lease)"
            )
        oldest = backlog.oldest_ready_since
        work = WorkState(
            tasks=tasks,
            steps=steps,
            retries=retries,
            backlog=BacklogView(
                ready_steps=backlog.ready,
                stuck_steps=backlog.stuck,
                oldest_ready_step_age_seconds=(
                    round(max(0.0, (now - oldest).total_seconds()), 3) if oldest else None
                ),
            ),
            database=PoolView(**db.pool_stats()),
            workers=tuple(
                LiveWorker(w, round((now - w.last_seen_at).total_seconds(), 3)) for w in live
            ),
            live_within_seconds=self.workers.live_within.total_seconds(),
        )
        return StatusReport(not reasons, tuple(reasons), now, readiness.checks, work)

    async def gauges(self) -> ScrapeGauges:
        """The scrape-time gauges of `/metrics`: unfinished work, backlog, live workers."""
        now = self.clock.now()
        unfinished = tuple(s.value for s in UNFINISHED)
        backlog = await db.backlog(now, now - self.stuck_after)
        oldest = backlog.oldest_ready_since
        return ScrapeGauges(
            tasks=await db.counts_by_status("tasker_tasks", unfinished),
            steps=await db.counts_by_status("tasker_workflow_steps", unfinished),
            ready_steps=backlog.ready,
            oldest_ready_step_age_seconds=(
                max(0.0, (now - oldest).total_seconds()) if oldest else 0.0
            ),
            retries=await db.retry_counts(now),
            live_workers=len(await self.workers.live()),
            limits=await limit_gauges(),
        )

    async def _database(self) -> Check:
        return await self._probe("database", db.ping())

    async def _broker(self) -> Check:
        if not self.broker_url:
            # Embedded mode: the broker is an in-process queue that cannot be unreachable.
            return Check("broker", True, mode="embedded")
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(
            self.broker_url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout
        )
        try:
            return await self._probe("broker", client.ping(), "redis")
        finally:
            await client.aclose()

    async def _probe(self, name: str, call: Awaitable[Any], mode: str | None = None) -> Check:
        began = time.perf_counter()
        try:
            await asyncio.wait_for(call, self.timeout)
        except TimeoutError:
            return Check(name, False, error=f"no answer within {self.timeout:g}s", mode=mode)
        except Exception as exc:
            return Check(name, False, error=f"{type(exc).__name__}: {exc}", mode=mode)
        latency = round((time.perf_counter() - began) * 1000, 2)
        return Check(name, True, latency, mode=mode)
