"""The step-handler API users implement: `StepHandler.process(step: StepContext)`."""

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn
from uuid import UUID


@dataclass(frozen=True, slots=True)
class StepContext:
    """Everything a step handler may read about the step it runs."""

    task_id: UUID
    name: str
    attempt: int
    """1 for the first attempt."""
    context: Any
    """The task's JSON context."""
    inputs: Any = None
    """Per-step inputs (set through `PATCH .../workflow_steps/{step}`)."""
    config: Mapping[str, Any] = field(default_factory=dict)
    """The step template's `handler_config`."""
    parent_results: Mapping[str, Any] = field(default_factory=dict)
    """Results of the steps this one depends on directly (its `depends_on`), by step name.

    Only direct parents: for a step further up the graph use `upstream_results()`."""
    namespace: str = ""
    handler_name: str = ""
    handler_version: str = ""
    timeout_seconds: float | None = None
    read_upstream: Callable[[], Awaitable[Mapping[str, Any]]] | None = field(
        default=None, repr=False, compare=False
    )
    """Set by the engine; handlers call `upstream_results()` instead."""
    loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False, compare=False)
    """The engine's event loop, for `upstream_results_sync` from a sync handler's thread."""

    item: Any = None
    """The item this run handles, for a `map_over` step (else None)."""
    index: int | None = None
    """The item's position in the mapped list, for a `map_over` step (else None)."""

    def start_task(
        self, namespace: str, name: str, context: Any = None, version: str | None = None
    ) -> NoReturn:
        """Start a child task and make this step wait for it, holding no worker.

        Does not return: the step completes with the child's leaf steps' results (by step name)
        when the child completes, and fails when it ends in error. Starting is keyed on (this
        task, this step), so a re-run of the step finds the child it started.
        """
        raise StartChildTask(namespace, name, {} if context is None else context, version)

    async def upstream_results(self) -> Mapping[str, Any]:
        """Results of every ancestor (parents, their parents, ...), by step name.

        Read from the database when called (not carried by the claim), so only the handlers
        that ask for it pay for it. From a sync `process`, use `upstream_results_sync()`.
        """
        if self.read_upstream is None:
            return dict(self.parent_results)
        return await self.read_upstream()

    def upstream_results_sync(self) -> Mapping[str, Any]:
        """`upstream_results()` for a sync handler (it runs in a worker thread)."""
        if self.read_upstream is None or self.loop is None:
            return dict(self.parent_results)
        read = self.read_upstream
        return asyncio.run_coroutine_threadsafe(_awaited(read), self.loop).result()


class StartChildTask(Exception):
    """Raised by `StepContext.start_task`: the engine starts the child, the step waits."""

    def __init__(self, namespace: str, name: str, context: Any, version: str | None) -> None:
        super().__init__(f"start child task {namespace}.{name}")
        self.namespace = namespace
        self.name = name
        self.context = context
        self.version = version


class StepHandler:
    """Base class for step handlers; override `process` (sync or `async def`).

    Return a JSON-serialisable value (it becomes the step's `results`). Raise `RetryableError`
    to ask for a retry, `PermanentError` to fail without one; any other exception is retried if
    the step is retryable. Handlers may run more than once (at-least-once): make them idempotent.
    """

    def process(self, step: StepContext) -> Any | Awaitable[Any]:
        """Do the step's work and return its results."""
        raise NotImplementedError


async def _awaited(read: Callable[[], Awaitable[Mapping[str, Any]]]) -> Mapping[str, Any]:
    return await read()
