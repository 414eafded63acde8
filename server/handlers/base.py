"""The step-handler API users implement: `StepHandler.process(step: StepContext)`."""

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any
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
    """Results of the steps this one depends on, by step name."""
    namespace: str = ""
    handler_name: str = ""
    handler_version: str = ""
    timeout_seconds: float | None = None


class StepHandler:
    """Base class for step handlers; override `process` (sync or `async def`).

    Return a JSON-serialisable value (it becomes the step's `results`). Raise `RetryableError`
    to ask for a retry, `PermanentError` to fail without one; any other exception is retried if
    the step is retryable. Handlers may run more than once (at-least-once): make them idempotent.
    """

    def process(self, step: StepContext) -> Any | Awaitable[Any]:
        """Do the step's work and return its results."""
        raise NotImplementedError
