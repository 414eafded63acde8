"""Builds the services of one process from its settings, and opens/closes the database.

The only place that chooses adapters: in-process events or Redis pub/sub, by configuration, and
the step store, by database (`server.engine.store`).
"""

import functools
import os
import socket
from dataclasses import dataclass, field
from uuid import uuid4

from server.auth.gate import Gate
from server.config import Settings
from server.db.setup import close_database, is_postgres, open_database
from server.domain.retry import BackoffPolicy
from server.engine.changes import StateChanges
from server.engine.map_items import MapItems
from server.engine.pg_items import PgMapItems
from server.engine.pg_store import PgStore
from server.engine.portable import PortableStore
from server.engine.runner import StepRunner
from server.engine.store import StepStore
from server.engine.sweeper import Sweeper
from server.engine.workers import WorkerRegistry
from server.infra.cache import Cache, MemoryCache, RedisCache
from server.infra.metrics import MetricsPublisher
from server.infra.ports import EventPublisher, StepDispatcher, SystemClock
from server.registry.catalogue import Catalogue
from server.registry.handler_registry import HandlerRegistry
from server.services.analytics import AnalyticsService
from server.services.events import EventHub
from server.services.health import HealthService
from server.services.pausing import PauseService
from server.services.schedules import ScheduleService
from server.services.signals import SignalService
from server.services.steps import StepService
from server.services.tasks import TaskService


def new_worker_id() -> str:
    """hostname:pid:random — unique per process start."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid4().hex[:6]}"


@dataclass
class Services:
    """Everything the adapters call, built once per process."""

    settings: Settings
    registry: HandlerRegistry
    hub: EventHub
    changes: StateChanges
    store: StepStore
    catalogue: Catalogue
    tasks: TaskService
    steps: StepService
    runner: StepRunner
    sweeper: Sweeper
    workers: WorkerRegistry
    analytics: AnalyticsService
    health: HealthService
    schedules: ScheduleService
    worker_id: str = field(default_factory=new_worker_id)
    auth: Gate = field(init=False)
    """Authentication and authorization, one gate shared by every adapter (`server.auth`)."""
    pausing: PauseService = field(init=False)
    """Pause and resume of tasks and handlers."""
    signals: SignalService = field(init=False)
    """Signal delivery to `wait_for` steps (built from `changes`)."""

    def __post_init__(self) -> None:
        # Built here so unusable key settings (e.g. a short secret) stop the process at start.
        self.auth = Gate(self.settings)
        self.pausing = PauseService(self.changes, self.registry)
        self.signals = SignalService(self.changes)

    def set_dispatcher(self, dispatcher: StepDispatcher) -> None:
        """Attach the broker adapter once it exists (it needs the services to exist first)."""
        self.changes.dispatcher = dispatcher

    async def open(self, *, migrate: bool = True) -> None:
        """Connect the database (migrating it first) and mirror the handler catalogue."""
        await open_database(
            self.settings.database_url, pool_max=self.settings.db_pool_max, migrate=migrate
        )
        await self.catalogue.sync()
        await self.schedules.sync_from_handlers()

    async def close(self) -> None:
        """Flush pending broker effects, then close the database connections."""
        self.changes.close()
        await self.analytics.close()
        await close_database()


def load_registry(settings: Settings) -> HandlerRegistry:
    """The handler registry for these settings (files on TASKER_HANDLERS_PATH + examples)."""
    return HandlerRegistry.load(
        settings.handler_dirs, examples=settings.examples, environment=settings.environment
    )


def build_services(
    settings: Settings,
    dispatcher: StepDispatcher,
    *,
    registry: HandlerRegistry | None = None,
    publisher: EventPublisher | None = None,
    store: str | None = None,
) -> Services:
    """Wire the core. Events go to Redis when a broker URL is set, else straight to the hub.

    The step store is PostgreSQL's single statements on PostgreSQL and the portable ORM store
    elsewhere; `store` ("portable" or "postgres") overrides that (the tests run both).
    """
    registry = registry or load_registry(settings)
    hub = EventHub()
    if publisher is None:
        if settings.broker_url:
            from server.infra.pubsub import RedisPublisher

            publisher = RedisPublisher(settings.broker_url)
        else:
            publisher = hub
    # Counts every committed transition once, in the process that committed it, so the metric
    # is not multiplied by the number of servers that receive it through pub/sub.
    publisher = MetricsPublisher(publisher)
    clock = SystemClock()
    changes = StateChanges(clock, dispatcher, publisher, background=bool(settings.broker_url))
    postgres = is_postgres(settings.database_url)
    backoff = BackoffPolicy(
        base_seconds=settings.backoff_base_seconds,
        max_seconds=settings.backoff_max_seconds,
        jitter=settings.backoff_jitter,
    )
    kind = store or ("postgres" if postgres else "portable")
    step_store = _step_store(kind, changes, backoff)
    catalogue = Catalogue(registry)
    worker_id = new_worker_id()
    runner = StepRunner(
        changes,
        step_store,
        registry,
        worker_id=worker_id,
        default_timeout=settings.default_step_timeout,
        lease_grace=settings.lease_grace_seconds,
    )
    workers = WorkerRegistry(
        clock, heartbeat_interval=settings.heartbeat_interval, database_clock=postgres
    )
    tasks = TaskService(changes, registry, catalogue, workers)
    runner.children = tasks.children  # `task:` steps and step.start_task create through it
    items = PgMapItems if kind == "postgres" else MapItems
    runner.items = items(changes, backoff, functools.partial(max_parallel_of, registry))
    return Services(
        settings=settings,
        registry=registry,
        hub=hub,
        changes=changes,
        store=step_store,
        catalogue=catalogue,
        tasks=tasks,
        steps=StepService(changes, tasks.step_cancelled),
        runner=runner,
        sweeper=Sweeper(
            changes,
            runner,
            workers,
            redispatch_after=settings.redispatch_after,
            dead_after=settings.worker_dead_after_seconds,
        ),
        workers=workers,
        analytics=AnalyticsService(
            _analytics_cache(settings, clock),
            clock,
            default_timeout=settings.default_step_timeout,
            stuck_after=settings.stuck_after_seconds,
        ),
        health=HealthService(
            clock,
            workers,
            broker_url=settings.broker_url,
            timeout=settings.health_timeout_seconds,
            stuck_after=settings.stuck_after_seconds,
        ),
        schedules=ScheduleService(changes, registry, tasks.creator),
        worker_id=worker_id,
    )


def max_parallel_of(
    registry: HandlerRegistry, namespace: str, name: str, version: str, step: str
) -> int:
    """A map step's `max_parallel`, from its template."""
    return registry.get(namespace, name, version).step(step).max_parallel or 1


def _step_store(kind: str, changes: StateChanges, backoff: BackoffPolicy) -> StepStore:
    if kind == "postgres":
        return PgStore(changes, backoff)
    if kind == "portable":
        return PortableStore(changes, backoff)
    raise ValueError(f"unknown step store {kind!r}")


def _analytics_cache(settings: Settings, clock: SystemClock) -> Cache:
    """Redis shared by all server processes in production; process memory when embedded."""
    url = settings.cache_url or settings.broker_url
    return RedisCache(url, clock) if url else MemoryCache(clock)
