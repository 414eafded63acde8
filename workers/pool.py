"""Running step workers: inside the server (embedded) or as `tasker worker` processes.

Both use the same pieces: a broker, the `run_step` actor calling the core's StepRunner on the
process's database loop, a Dramatiq Worker, and a background loop for the sweeper and the
heartbeat.
"""

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from server.container import Services
from workers.broker import DramatiqDispatcher, build_broker, declare_run_step
from workers.runtime import LoopRuntime
from workers.wakeup import QuietWorker, stop_promptly

log = logging.getLogger(__name__)


class WorkerPool:
    """A Dramatiq Worker whose actor runs steps on one event loop, plus the safety-net loop."""

    def __init__(self, services: Services, runtime: LoopRuntime, *, threads: int) -> None:
        self.services = services
        self.runtime = runtime
        settings = services.settings
        self.broker = build_broker(settings.broker_url)
        actor = declare_run_step(self.broker, self._run)
        services.set_dispatcher(DramatiqDispatcher(actor))
        self.threads = threads
        self.worker: QuietWorker | None = None
        self._background: concurrent.futures.Future[None] | None = None
        self._stopping: asyncio.Event | None = None
        self.started_at = datetime.now(UTC)

    def _run(self, step_id: int, limited: bool) -> None:
        outcome = self.runtime.run(self.services.runner.run_step(step_id, limited=limited))
        log.debug("step %s: %s", step_id, outcome)

    def start_consuming(self) -> None:
        """Start the Dramatiq worker threads (call from a non-loop thread or before serving)."""
        # An in-process Worker never emits process_boot, which middleware rely on.
        self.broker.emit_after("process_boot")
        self.worker = QuietWorker(
            self.broker,
            worker_threads=self.threads,
            worker_timeout=self.services.settings.worker_poll_ms,
        )
        self.worker.start()
        # A ready step has someone to run it from now on, even before this process's first
        # heartbeat is written (see `server.services.dependencies`).
        self.services.tasks.liveness.consuming_here = True

    def stop_consuming(self) -> None:
        """Stop the worker threads (blocks until in-flight messages finish)."""
        self.services.tasks.liveness.consuming_here = False
        if self.worker is not None:
            stop_promptly(self.worker)
            self.worker = None
        self.broker.close()

    def start_background(self, *, firing_only: bool = False) -> None:
        """Schedule the sweeper/heartbeat loop on the runtime's loop; `firing_only`: just the
        cron schedules' loop (a server whose steps run in worker processes)."""
        work = self._firing_only() if firing_only else self._housekeeping()
        self._background = asyncio.run_coroutine_threadsafe(work, self.runtime.loop)

    async def stop_background(self, grace: float = 10.0) -> None:
        """Stop the housekeeping loop, then forget this worker's heartbeat (on the loop).

        The pass under way is let finish rather than cancelled: a transaction cancelled
        half-way left SQLite's connection lock held, and the shutdown then waited forever.
        """
        if self._background is not None:
            if self._stopping is not None:
                self._stopping.set()
                self.services.schedules.alarm.ring()  # the firer's sleep ends with it
            running = asyncio.wrap_future(self._background)
            try:
                await asyncio.wait_for(asyncio.shield(running), grace)
            except (TimeoutError, asyncio.CancelledError):
                running.cancel()
            except Exception:
                log.exception("housekeeping ended with an error")
        with contextlib.suppress(Exception):
            await self.services.workers.forget(self.services.worker_id)

    async def heartbeat(self) -> None:
        """Write this worker's heartbeat now (before consuming, so that a worker killed during
        its first step is already known, and then known dead)."""
        await self.services.workers.heartbeat(
            self.services.worker_id, socket.gethostname(), os.getpid(), self.started_at
        )

    async def _housekeeping(self) -> None:
        self._stopping = stopping = asyncio.Event()
        await asyncio.gather(
            self._beating(stopping), self._sweeping(stopping), self._firing(stopping)
        )

    async def _firing_only(self) -> None:
        self._stopping = stopping = asyncio.Event()
        await self._firing(stopping)

    async def _beating(self, stopping: asyncio.Event) -> None:
        # Its own loop, not a turn of the sweep's: a slow sweep under load must not delay the
        # heartbeat that tells other workers this one is alive.
        await self._every(self.services.settings.heartbeat_interval, self.heartbeat, stopping)

    async def _sweeping(self, stopping: asyncio.Event) -> None:
        await self._every(self.services.settings.sweep_interval, self._sweep, stopping)

    async def _sweep(self) -> None:
        await self.services.sweeper.sweep()

    async def _firing(self, stopping: asyncio.Event) -> None:
        # Its own loop, not a turn of the sweep's. It sleeps until the next tick it knows of,
        # at most `schedule_interval`: a schedule changed in this process rings the alarm and
        # is fired on time by this process; one changed by another process is seen within
        # that cap (and fired on time by the process that changed it).
        schedules = self.services.schedules
        longest = self.services.settings.schedule_interval

        async def fire() -> float:
            report = await schedules.fire_due()
            return schedules.seconds_until(report.next_due, longest)

        await self._every(longest, fire, stopping, sleep=schedules.alarm.sleep)

    @staticmethod
    async def _every(
        interval: float,
        work: Callable[[], Awaitable[float | None]],
        stopping: asyncio.Event,
        sleep: Callable[[float], Awaitable[object]] | None = None,
    ) -> None:
        """Run `work` until stopped, pausing after each pass for the seconds it returns (else,
        and after a failure, `interval`); `sleep` pauses instead of waiting on `stopping`
        (it must then end when the loop is stopped)."""

        async def until_stopped(seconds: float) -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), seconds)

        while not stopping.is_set():
            pause = interval
            try:
                asked = await work()
                pause = interval if asked is None else asked
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("housekeeping pass failed")
            await (sleep or until_stopped)(pause)
