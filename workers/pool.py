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
from datetime import UTC, datetime

import dramatiq

from server.container import Services
from workers.broker import DramatiqDispatcher, build_broker, declare_run_step
from workers.runtime import LoopRuntime

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
        self.worker: dramatiq.Worker | None = None
        self._background: concurrent.futures.Future[None] | None = None
        self._stopping: asyncio.Event | None = None
        self.started_at = datetime.now(UTC)

    def _run(self, step_id: int) -> None:
        outcome = self.runtime.run(self.services.runner.run_step(step_id))
        log.debug("step %s: %s", step_id, outcome)

    def start_consuming(self) -> None:
        """Start the Dramatiq worker threads (call from a non-loop thread or before serving)."""
        # An in-process Worker never emits process_boot, which middleware rely on.
        self.broker.emit_after("process_boot")
        self.worker = dramatiq.Worker(
            self.broker,
            worker_threads=self.threads,
            worker_timeout=self.services.settings.worker_poll_ms,
        )
        self.worker.start()

    def stop_consuming(self) -> None:
        """Stop the worker threads (blocks until in-flight messages finish)."""
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        self.broker.close()

    def start_background(self) -> None:
        """Schedule the sweeper/heartbeat loop on the runtime's loop."""
        self._background = asyncio.run_coroutine_threadsafe(self._housekeeping(), self.runtime.loop)

    async def stop_background(self, grace: float = 10.0) -> None:
        """Stop the housekeeping loop, then forget this worker's heartbeat (on the loop).

        The pass under way is let finish rather than cancelled: a transaction cancelled
        half-way left SQLite's connection lock held, and the shutdown then waited forever.
        """
        if self._background is not None:
            if self._stopping is not None:
                self._stopping.set()
            running = asyncio.wrap_future(self._background)
            try:
                await asyncio.wait_for(asyncio.shield(running), grace)
            except (TimeoutError, asyncio.CancelledError):
                running.cancel()
            except Exception:
                log.exception("housekeeping ended with an error")
        with contextlib.suppress(Exception):
            await self.services.workers.forget(self.services.worker_id)

    async def _housekeeping(self) -> None:
        settings = self.services.settings
        next_beat = 0.0
        loop = asyncio.get_running_loop()
        self._stopping = stopping = asyncio.Event()
        while not stopping.is_set():
            try:
                if loop.time() >= next_beat:
                    await self.services.workers.heartbeat(
                        self.services.worker_id,
                        socket.gethostname(),
                        os.getpid(),
                        self.started_at,
                    )
                    next_beat = loop.time() + settings.heartbeat_interval
                await self.services.sweeper.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("housekeeping pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), settings.sweep_interval)
