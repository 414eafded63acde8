"""Health use cases: liveness, readiness (database and broker, each within a timeout) and a
detailed status (work by state, retries, backlog, the connection pool, live workers).

Readiness fails when a dependency does not answer in time. The status is unhealthy when a
dependency is down, when ready work has no live worker to run it, or when steps are stuck
(ready, due or holding an expired lease for longer than `stuck_after`); it says which.
"""

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from server.db import health as db
from server.domain.states import StepState
from server.metrics import ScrapeGauges
from server.services.ports import Clock
from server.services.workers import WorkerRegistry

UNFINISHED = (StepState.PENDING, StepState.IN_PROGRESS, StepState.ERROR)
"""The states counted as unfinished work on `/metrics` (tasks and steps spell them alike)."""


@dataclass(frozen=True, slots=True)
class Check:
    """One dependency probe."""

    name: str
    ok: bool
    latency_ms: float | None = None
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """`{"status": "ok"|"failed", "latency_ms", "error"?, ...detail}`."""
        data: dict[str, Any] = {"status": "ok" if self.ok else "failed"}
        if self.latency_ms is not None:
            data["latency_ms"] = self.latency_ms
        if self.error:
            data["error"] = self.error
        return {**data, **self.detail}


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

    def to_json(self) -> dict[str, Any]:
        """`{"status": "ready"|"not_ready", "checks": {name: check}}`."""
        return {
            "status": "ready" if self.ok else "not_ready",
            "checks": {c.name: c.to_json() for c in self.checks},
        }


@dataclass(frozen=True, slots=True)
class StatusReport:
    """The detailed status; `reasons` says why when it is not healthy."""

    healthy: bool
    reasons: list[str]
    checked_at: datetime
    checks: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """`{"status": "healthy"|"unhealthy", "reasons", "checked_at", "checks", ...details}`."""
        return {
            "status": "healthy" if self.healthy else "unhealthy",
            "reasons": list(self.reasons),
            "checked_at": self.checked_at.isoformat(),
            "checks": self.checks,
            **self.details,
        }


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
        checks = {c.name: c.to_json() for c in readiness.checks}
        reasons = [f"{c.name} unreachable: {c.error}" for c in readiness.failed]
        if not readiness.checks[0].ok:  # nothing below can be read without the database
            return StatusReport(False, reasons, now, checks)
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
        details = {
            "tasks": tasks,
            "steps": steps,
            "retries": retries,
            "backlog": {
                "ready_steps": backlog.ready,
                "stuck_steps": backlog.stuck,
                "oldest_ready_step_age_seconds": (
                    round(max(0.0, (now - oldest).total_seconds()), 3) if oldest else None
                ),
            },
            "database": db.pool_stats(),
            "workers": {
                "live": len(live),
                "live_within_seconds": self.workers.live_within.total_seconds(),
                "workers": [
                    {
                        "worker_id": w.worker_id,
                        "hostname": w.hostname,
                        "pid": w.pid,
                        "started_at": w.started_at.isoformat(),
                        "last_seen_at": w.last_seen_at.isoformat(),
                        "last_seen_seconds_ago": round((now - w.last_seen_at).total_seconds(), 3),
                    }
                    for w in live
                ],
            },
        }
        return StatusReport(not reasons, reasons, now, checks, details)

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
        )

    async def _database(self) -> Check:
        return await self._probe("database", db.ping())

    async def _broker(self) -> Check:
        if not self.broker_url:
            # Embedded mode: the broker is an in-process queue that cannot be unreachable.
            return Check("broker", True, detail={"mode": "embedded"})
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(
            self.broker_url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout
        )
        try:
            return await self._probe("broker", client.ping(), {"mode": "redis"})
        finally:
            await client.aclose()

    async def _probe(
        self, name: str, call: Awaitable[Any], detail: dict[str, Any] | None = None
    ) -> Check:
        began = time.perf_counter()
        try:
            await asyncio.wait_for(call, self.timeout)
        except TimeoutError:
            return Check(
                name, False, error=f"no answer within {self.timeout:g}s", detail=detail or {}
            )
        except Exception as exc:
            return Check(name, False, error=f"{type(exc).__name__}: {exc}", detail=detail or {})
        latency = round((time.perf_counter() - began) * 1000, 2)
        return Check(name, True, latency, detail=detail or {})
