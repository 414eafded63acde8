"""Run tasks in-process, in your own pytest suite, to test your handlers end to end.

::

    from server.testing import tasker_test_env

    async def test_refund_flow():
        async with tasker_test_env(handlers_path="config/tasker") as t:
            run = await t.run("payments", "refund_payment", {"payment_id": 7})
            assert run.status == "complete"
            assert run.results["process_refund"]["refunded"] is True

Each environment has its own temporary SQLite database and the real engine: the same loading,
validation, claiming, retry decisions and finalization as `tasker serve`, with no broker and no
worker threads. Instead of sending dispatch messages to workers, the dispatcher records them and
`drain()` runs those steps one at a time, in order of when they become due, until nothing is left.

HTTP steps (`handler_config: {type: http}`) call out for real unless you stub them:
`t.stub_http(respond)` routes their requests to `respond(request) -> httpx.Response` (or to any
`httpx.AsyncBaseTransport`) and returns the list of requests they sent::

    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"charged": True})

    sent = t.stub_http(respond)
    run = await t.run("payments", "charge", {"amount": 5})
    assert sent[0].url.path == "/charge"

Errors your test may catch are exported here too: `ValidationFailed` (a context that fails the
handler's schema, raised by `create`/`run`), `InvalidTaskConfig` (a subclass of it: an unknown
`bypass_steps` name, ...), `HandlerNotFound`, `TemplateInvalid` (a bad handler YAML file, raised
when the environment opens), and the handler-side `RetryableError` and `PermanentError`.

With `fast_retries=True` (the default) a backoff delay does not make the test wait: the
environment's clock jumps forward to the retry time instead (so timestamps recorded on steps
are in that virtual future). With `fast_retries=False` it sleeps for real.
"""

import asyncio
import contextlib
import heapq
import itertools
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from os import PathLike
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
from tortoise.context import TortoiseContext

from server.config import Settings
from server.container import Services, build_services
from server.domain.errors import (
    HandlerNotFound,
    InvalidTaskConfig,
    PermanentError,
    RetryableError,
    TemplateInvalid,
    ValidationFailed,
)
from server.domain.flow import DEFAULT_PRIORITY
from server.domain.views import CreateTask, StepView, TaskView
from server.handlers.http import HttpStepHandler
from server.registry.definitions import HTTP_HANDLER_CLASS

__all__ = [
    "HandlerNotFound",
    "InvalidTaskConfig",
    "PermanentError",
    "RetryableError",
    "TaskRun",
    "TaskerTestEnv",
    "TemplateInvalid",
    "ValidationFailed",
    "tasker_test_env",
]

MAX_STEP_RUNS = 10_000
"""A guard against handlers that never stop asking for retries."""


class VirtualClock:
    """The real time plus an offset that `advance_to` moves forward (never back)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance_to(self, moment: datetime) -> None:
        ahead = moment - self.now()
        if ahead > timedelta():
            self.offset += ahead


@dataclass
class RecordingDispatcher:
    """Keeps nudges in a queue ordered by when each step becomes due."""

    clock: VirtualClock
    queue: list[tuple[datetime, int, int]] = field(default_factory=list)
    _order: Iterator[int] = field(default_factory=itertools.count)
    dispatched: list[int] = field(default_factory=list)
    """Every step id ever nudged, in order (for tests of the environment itself)."""

    def dispatch(
        self,
        step_ids: Sequence[int],
        delay_seconds: float = 0.0,
        priority: int = DEFAULT_PRIORITY,
        limited: bool = False,
    ) -> None:
        # Due time first, then sending order (the priority lanes are the broker's business).
        due = self.clock.now() + timedelta(seconds=delay_seconds)
        for step_id in step_ids:
            heapq.heappush(self.queue, (due, next(self._order), step_id))
            self.dispatched.append(step_id)

    def backlog(self) -> int:
        """Dispatches not yet run."""
        return len(self.queue)


@dataclass(frozen=True)
class TaskRun:
    """A task after `drain()`: its final record and its steps by name."""

    task: TaskView
    steps: dict[str, StepView]

    @property
    def status(self) -> str:
        """`complete`, `error`, `cancelled`, ... (or `pending`/`in_progress` if blocked)."""
        return self.task.status.value

    @property
    def results(self) -> dict[str, Any]:
        """Each step's results, by step name."""
        return {name: step.results for name, step in self.steps.items()}

    def step(self, name: str) -> StepView:
        return self.steps[name]


class TaskerTestEnv:
    """The engine over a private database; see the module docstring."""

    def __init__(self, services: Services, dispatcher: RecordingDispatcher, fast: bool) -> None:
        self.services = services
        self.dispatcher = dispatcher
        self.fast_retries = fast

    def stub_http(
        self, respond: Callable[[httpx.Request], httpx.Response] | httpx.AsyncBaseTransport
    ) -> list[httpx.Request]:
        """Send the HTTP steps' requests to `respond` instead of the network, for this
        environment; returns the (growing) list of requests sent. `respond` may be a function
        of the request (wrapped in `httpx.MockTransport`) or a transport of your own."""
        sent: list[httpx.Request] = []
        inner = respond if isinstance(respond, httpx.AsyncBaseTransport) else None
        mock = None if inner is not None else httpx.MockTransport(respond)  # type: ignore[arg-type]

        class _Recording(httpx.AsyncBaseTransport):
            async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
                sent.append(request)
                transport = inner or mock
                assert transport is not None
                return await transport.handle_async_request(request)

        handler = self.services.registry.step_handler(HTTP_HANDLER_CLASS)
        assert isinstance(handler, HttpStepHandler)
        handler.transport = _Recording()
        return sent

    async def create(
        self,
        namespace: str,
        name: str,
        context: Mapping[str, Any] | None = None,
        *,
        version: str | None = None,
        bypass_steps: Sequence[str] = (),
    ) -> TaskView:
        """Create a task (validated like the API does) without running anything yet."""
        request = CreateTask(
            namespace, name, dict(context or {}), version, bypass_steps=tuple(bypass_steps)
        )
        task, _ = await self.services.tasks.create_task(request)
        return task

    async def run(
        self,
        namespace: str,
        name: str,
        context: Mapping[str, Any] | None = None,
        *,
        version: str | None = None,
        bypass_steps: Sequence[str] = (),
    ) -> TaskRun:
        """Create a task and run its steps until it can make no more progress."""
        task = await self.create(
            namespace, name, context, version=version, bypass_steps=bypass_steps
        )
        await self.drain()
        return await self.result(task.id)

    async def drain(self) -> int:
        """Run every nudged step, earliest due first, until none is left; returns how many ran.

        After you act on a task yourself (`services.steps.retry_step`, `resolve_step`, ...),
        call this again to let it continue.
        """
        runs = 0
        queue = self.dispatcher.queue
        while queue:
            due, _, step_id = heapq.heappop(queue)
            wait = (due - self.dispatcher.clock.now()).total_seconds()
            if wait > 0:
                if self.fast_retries:
                    self.dispatcher.clock.advance_to(due)
                else:
                    await asyncio.sleep(wait)
            await self.services.runner.run_step(step_id)
            runs += 1
            if runs >= MAX_STEP_RUNS:
                raise RuntimeError(f"more than {MAX_STEP_RUNS} step runs: is a step looping?")
        return runs

    async def result(self, task_id: UUID | str) -> TaskRun:
        """The task as it is now, with its steps."""
        task = await self.services.tasks.get_task(task_id)
        steps = await self.services.steps.list_steps(task.id)
        return TaskRun(task, {s.name: s for s in steps})


@contextlib.asynccontextmanager
async def tasker_test_env(
    handlers_path: str | PathLike[str] | Sequence[str | PathLike[str]] | None = None,
    *,
    examples: bool = False,
    fast_retries: bool = True,
    environment: str = "test",
    **settings: Any,
) -> AsyncIterator[TaskerTestEnv]:
    """A private engine for one test: handlers loaded, database migrated, closed afterwards.

    `handlers_path` is a directory (or several) of handler YAML files, as in
    `TASKER_HANDLERS_PATH`; `examples=True` adds the bundled catalogue. Extra keyword arguments
    override `Settings` fields (e.g. `backoff_base_seconds=0.01`, `default_step_timeout=5`).
    """
    dirs = _paths(handlers_path)
    # A fresh ORM context of our own: several environments may then follow each other (or
    # nest inside a suite that uses Tortoise itself) in one task without sharing connections.
    with tempfile.TemporaryDirectory(prefix="tasker-test-") as tmp, TortoiseContext():
        config = Settings(
            database_url=f"sqlite://{Path(tmp) / 'tasker.db'}",
            broker_url=None,  # never a real broker, whatever the environment says
            handlers_path=":".join(str(d) for d in dirs),
            examples=examples,
            environment=environment,
            **settings,
        )
        clock = VirtualClock()
        dispatcher = RecordingDispatcher(clock)
        services = build_services(config, dispatcher)
        services.changes.clock = clock
        await services.open()
        try:
            yield TaskerTestEnv(services, dispatcher, fast_retries)
        finally:
            await services.close()


def _paths(value: str | PathLike[str] | Sequence[str | PathLike[str]] | None) -> list[Path]:
    if value is None:
        return []
    if isinstance(value, str | PathLike):
        return [Path(p) for p in str(value).split(":") if p]
    return [Path(p) for p in value]
