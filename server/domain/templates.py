"""Handler templates: the validated, immutable form of a handler definition.

A `HandlerTemplate` is what the registry hands to every other part of the system; it is built
from YAML by `server.registry.handler_registry` and never mutated afterwards.
"""

from dataclasses import dataclass, field
from typing import Any

from server.domain.dag import StepGraph
from server.domain.flow import DEFAULT_PRIORITY, ConcurrencySpec, RateLimitSpec
from server.domain.schedules import ScheduleSpec
from server.domain.waits import SleepSpec, WaitSpec


@dataclass(frozen=True, slots=True)
class ChildTaskSpec:
    """What a `task:` step starts: a handler, and where the child's context comes from."""

    namespace: str
    name: str
    version: str | None = None
    context_from: str = "context"


@dataclass(frozen=True, slots=True)
class StepTemplate:
    """One step of a handler: what to run and how to retry it."""

    name: str
    handler_class: str
    description: str | None = None
    depends_on: tuple[str, ...] = ()
    retryable: bool = True
    retry_limit: int = 3
    skippable: bool = False
    timeout_seconds: float | None = None
    handler_config: dict[str, Any] = field(default_factory=dict)
    custom_events: tuple[str, ...] = ()
    dependent_system: str | None = None
    depends_on_step: str | None = None
    """The single-parent form as written in the definition (the seed reports it verbatim)."""
    concurrency: ConcurrencySpec | None = None
    """At most `limit` steps of this template running per key, across all tasks."""
    rate_limit: RateLimitSpec | None = None
    """At most `limit` starts per key in any sliding window of `period` seconds."""
    sleep: SleepSpec | None = None
    """A built-in durable sleep (no handler runs)."""
    wait_for: WaitSpec | None = None
    """A built-in wait for a signal (no handler runs)."""
    run_if: str | None = None
    """A condition (`server.registry.run_if`): when false the step is skipped, not run."""
    child_task: ChildTaskSpec | None = None
    """A `task:` step: it starts this child task and completes with its results."""
    map_over: str | None = None
    """A path to a list: the handler runs once per item (`server.domain.value_paths`)."""
    max_parallel: int | None = None
    """At most this many items of a map step in progress at once."""


@dataclass(frozen=True, slots=True)
class HandlerTemplate:
    """A named, versioned DAG of steps in a namespace."""

    namespace: str
    name: str
    version: str
    steps: tuple[StepTemplate, ...]
    graph: StepGraph
    description: str | None = None
    context_schema: dict[str, Any] | None = None
    default_dependent_system: str | None = None
    named_steps: tuple[str, ...] = ()
    source: str | None = None
    """Where the definition was loaded from (a file path), for error messages."""
    schedules: tuple[ScheduleSpec, ...] = ()
    """Cron schedules the file declares (upserted at start, `server.services.schedules`)."""
    debounce: tuple[str, float] | None = None
    """(key, seconds): creations with one key within `seconds` collapse into one task
    (`server.services.debounce`); the key is a `context.` path or a constant."""
    concurrency: ConcurrencySpec | None = None
    """At most `limit` tasks of this handler in progress per key."""
    priority: int = DEFAULT_PRIORITY
    """The default priority of its tasks, 1 (low) .. 3 (high)."""

    @property
    def full_name(self) -> str:
        """`namespace.name@version`, the task's display name."""
        return f"{self.namespace}.{self.name}@{self.version}"

    def step(self, name: str) -> StepTemplate:
        """The step template called `name` (KeyError when absent)."""
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class NamespaceInfo:
    """A namespace and the handlers registered in it (latest version of each name first)."""

    name: str
    description: str | None
    handler_names: tuple[str, ...]
