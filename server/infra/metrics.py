"""Prometheus metrics: what is counted, where it is counted, and the `/metrics` text.

Counters and histograms (names `tasker_*`) are incremented in the process where things happen:
domain events by `MetricsPublisher` (it wraps the process's event publisher, so every
committed transition passes through it once), creations by the task service, step timings
by the step runner, HTTP by `HttpMetricsMiddleware`. With `PROMETHEUS_MULTIPROC_DIR` set
(before this module is imported, in every uvicorn and `tasker worker` process; the
supervisor empties it at start), each process
writes its values there and `render` sums them: one scrape of any server process shows the
whole deployment. Gauges are not kept in those files at all: they are computed from the
database at scrape time (`ScrapeGauges`), so they are right whichever process answers.
"""

import functools
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Values are mmapped files there; a missing directory would fail the first increment.
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from server.domain.states import StepState, TaskState
from server.domain.views import TransitionEvent
from server.infra.ports import EventPublisher

log = logging.getLogger(__name__)

DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
HANDOFF_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

TASKS_CREATED = Counter("tasker_tasks_created", "Tasks created.", ["namespace"])
TASKS_COMPLETED = Counter("tasker_tasks_completed", "Tasks that completed.", ["namespace"])
TASKS_FAILED = Counter("tasker_tasks_failed", "Tasks that failed (moved to error).", ["namespace"])
TASKS_CANCELLED = Counter("tasker_tasks_cancelled", "Tasks cancelled.", ["namespace"])
STEP_EXECUTIONS = Counter(
    "tasker_step_executions",
    "Finished step attempts by outcome: complete, retry (failed, retry scheduled), failed "
    "(failed for good) or cancelled (while running).",
    ["namespace", "outcome"],
)
STEP_RETRIES = Counter(
    "tasker_step_retries",
    "Retries started: a step leaving backoff for another attempt.",
    ["namespace"],
)
TASK_DURATION = Histogram(
    "tasker_task_duration_seconds",
    "Task creation to completion or failure.",
    ["namespace", "status"],
    buckets=DURATION_BUCKETS,
)
STEP_DURATION = Histogram(
    "tasker_step_duration_seconds",
    "Time in the step handler for one attempt, by outcome.",
    ["namespace", "outcome"],
    buckets=DURATION_BUCKETS,
)
STEP_HANDOFF = Histogram(
    "tasker_step_handoff_seconds",
    "Latency from a step's last parent completing to the step starting (first attempts).",
    ["namespace"],
    buckets=HANDOFF_BUCKETS,
)
HTTP_REQUESTS = Counter(
    "tasker_http_requests",
    "HTTP requests by route template and status.",
    ["method", "route", "status"],
)
RATE_LIMITED = Counter(
    "tasker_rate_limited",
    "Step starts refused by a rate limit (each sent once more for when its window opens). "
    "Labelled by the limit (handler/step), never by key: the label set is what the handlers "
    "declare.",
    ["limit"],
)
RATE_LIMIT_ERRORS = Counter(
    "tasker_rate_limit_errors",
    "Rate-limit store calls that failed or timed out (the requests went through uncounted).",
    ["error"],  # not a status: the label naming the failure
)
HTTP_LATENCY = Histogram(
    "tasker_http_request_duration_seconds",
    "HTTP request latency by route template.",
    ["method", "route"],
)

_TASK_END = {"complete": TASKS_COMPLETED, "error": TASKS_FAILED, "cancelled": TASKS_CANCELLED}
_STEP_ENDED = {s.value: s.value for s in (StepState.COMPLETE, StepState.CANCELLED)}
"""Step executions counted by how they ended, labelled with the step's new state."""
_STEP_FAILED = {"retry scheduled": "retry", "failed": "failed"}
_RUNNER_OUTCOME = {
    "complete": "complete",  # not a status: the runner's outcome, as a metric label
    "retrying": "retry",
    "failed": "failed",
}


class _TaskStarts:
    """Creation times of tasks this process is running steps of, to time them when they end.

    The task's final transition is published by the process that ran its last step, which
    recorded the creation time when it claimed that step. Bounded: tasks that end elsewhere
    fall out as newer ones come in.
    """

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._items: OrderedDict[str, datetime] = OrderedDict()
        self._lock = threading.Lock()  # publishing may run on the outbox thread

    def note(self, task_id: str, created_at: datetime) -> None:
        with self._lock:
            self._items[task_id] = created_at
            self._items.move_to_end(task_id)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def pop(self, task_id: str) -> datetime | None:
        with self._lock:
            return self._items.pop(task_id, None)


TASK_STARTS = _TaskStarts()


def count_events(events: Sequence[TransitionEvent]) -> None:
    """Count committed transitions (the MetricsPublisher calls this once per event batch)."""
    for e in events:
        ns = e.namespace
        if e.step_name is None:
            if e.to_status in _TASK_END:
                _TASK_END[e.to_status].labels(ns).inc()
                started = TASK_STARTS.pop(e.task_id)
                if started is not None and e.to_status != TaskState.CANCELLED:
                    seconds = (e.occurred_at - started).total_seconds()
                    TASK_DURATION.labels(ns, e.to_status).observe(max(0.0, seconds))
        elif e.from_status == StepState.IN_PROGRESS:
            outcome = _STEP_ENDED.get(e.to_status)
            if e.to_status == StepState.ERROR:
                outcome = _STEP_FAILED.get(e.reason or "")
            if outcome:
                STEP_EXECUTIONS.labels(ns, outcome).inc()
        elif (
            e.from_status == StepState.ERROR
            and e.to_status == StepState.PENDING
            and e.reason == "retry due"
        ):
            STEP_RETRIES.labels(ns).inc()


def task_created(namespace: str) -> None:
    """Count a created task (`count_events` skips the "created" transitions)."""
    TASKS_CREATED.labels(namespace).inc()


class MetricsPublisher:
    """An EventPublisher that counts events, then hands them to the real one."""

    def __init__(self, inner: EventPublisher) -> None:
        self.inner = inner

    def publish(self, events: Sequence[TransitionEvent]) -> None:
        """Count (never raising), then publish."""
        try:
            count_events(events)
        except Exception:
            log.warning("counting %d events failed", len(events), exc_info=True)
        self.inner.publish(events)


class StepTimer:
    """Times one claimed attempt: the hand-off into it, its time in the handler, and (through
    TASK_STARTS) its task's duration if this attempt ends the task."""

    def __init__(self, claim: Any, now: datetime) -> None:
        self.namespace: str = claim.task.namespace
        created: datetime | None = getattr(claim, "task_created_at", None)
        if created is not None:
            TASK_STARTS.note(str(claim.task.id), created)
        parents_done: datetime | None = getattr(claim, "parents_done_at", None)
        if claim.attempt == 1 and parents_done is not None:
            # Retries are excluded: their wait is the backoff, not the hand-off.
            seconds = max(0.0, (now - parents_done).total_seconds())
            STEP_HANDOFF.labels(self.namespace).observe(seconds)
        self._began = time.perf_counter()
        self._ran = 0.0

    def executed(self) -> None:
        """The handler returned (or raised)."""
        self._ran = time.perf_counter() - self._began

    def recorded(self, outcome: str) -> None:
        """The runner recorded `outcome` ("complete", "retrying", "failed", "discarded")."""
        label = _RUNNER_OUTCOME.get(outcome)
        if label is not None:
            STEP_DURATION.labels(self.namespace, label).observe(self._ran)


@dataclass(frozen=True, slots=True)
class ScrapeGauges:
    """Current state read from the database when `/metrics` is scraped."""

    tasks: dict[str, int] = field(default_factory=dict)
    steps: dict[str, int] = field(default_factory=dict)
    ready_steps: int = 0
    oldest_ready_step_age_seconds: float = 0.0
    retries: dict[str, int] = field(default_factory=dict)
    live_workers: int = 0
    limits: dict[str, tuple[int, int]] = field(default_factory=dict)
    """By limit (`step:<namespace>/<handler>/<step>` or `task:<namespace>/<handler>`): slots
    held and steps waiting, summed over keys (no key label: the cardinality stays bounded)."""

    def families(self) -> Iterator[Metric]:
        """The gauges as metric families."""
        for name, help_, values in (
            (
                "tasker_tasks",
                "Unfinished tasks by status (finished ones: the counters).",
                self.tasks,
            ),
            ("tasker_steps", "Steps of unfinished work by status.", self.steps),
            (
                "tasker_step_retries_pending",
                "Errored steps: backing_off, due, exhausted.",
                self.retries,
            ),
        ):
            family = GaugeMetricFamily(name, help_, labels=["status"])
            for status, n in sorted(values.items()):
                family.add_metric([status], n)
            yield family
        yield GaugeMetricFamily(
            "tasker_steps_ready", "Steps ready to run now.", value=self.ready_steps
        )
        yield GaugeMetricFamily(
            "tasker_oldest_ready_step_age_seconds",
            "How long the longest-waiting ready step has waited (0 when none).",
            value=self.oldest_ready_step_age_seconds,
        )
        yield GaugeMetricFamily(
            "tasker_live_workers", "Workers with a recent heartbeat.", value=self.live_workers
        )
        in_use = GaugeMetricFamily(
            "tasker_limit_in_use", "Concurrency slots held, per limit (all keys).", labels=["limit"]
        )
        waiting = GaugeMetricFamily(
            "tasker_limit_waiting", "Steps waiting for a concurrency slot, per limit.",
            labels=["limit"],
        )  # fmt: skip
        for scope, (held, queued) in sorted(self.limits.items()):
            in_use.add_metric([scope], held)
            waiting.add_metric([scope], queued)
        yield in_use
        yield waiting


class _Collected:
    """A one-scrape collector over fixed families (the gauges, or the process registry)."""

    def __init__(self, families: Any) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families()


def counters_registry() -> CollectorRegistry:
    """The counters and histograms of this process, or with `PROMETHEUS_MULTIPROC_DIR` of
    every process writing there (what `tasker worker`'s own endpoint serves)."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Collected(REGISTRY.collect))
    return registry


def render(gauges: ScrapeGauges) -> tuple[bytes, str]:
    """The Prometheus text for this deployment: counters (all processes) plus `gauges`."""
    registry = counters_registry()
    registry.register(_Collected(gauges.families))
    return generate_latest(registry), CONTENT_TYPE_LATEST


class HttpMetricsMiddleware:
    """Counts and times HTTP requests by route template (never the raw path: ids would make
    a series per task). Plain ASGI, so streaming responses keep streaming."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500

        async def send_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            counter, timer = _http_series(scope.get("method", "GET"), route_of(scope), status)
            counter.inc()
            timer.observe(time.perf_counter() - began)


@functools.cache
def _http_series(method: str, route: str, status: int) -> tuple[Any, Any]:
    # `labels()` validates and locks on every call; the series of one (method, route, status)
    # are the same objects for the life of the process. Bounded: routes are templates.
    return HTTP_REQUESTS.labels(method, route, str(status)), HTTP_LATENCY.labels(method, route)


def route_of(scope: dict[str, Any]) -> str:
    """The path template of the route that matches this request, or `<unmatched>`.

    The router leaves the route it chose in `scope["route"]`; without one (no route matched,
    or the method did not), asks the app's routes as Starlette's router does
    (`route.matches`), comparing the match by name so that this module stays free of
    web-framework imports (the core imports it).
    """
    chosen = scope.get("route")
    if chosen is not None and hasattr(chosen, "path"):
        return str(chosen.path)
    app = scope.get("app")
    partial = "<unmatched>"
    for route in getattr(getattr(app, "router", None), "routes", ()):
        match, _ = route.matches({**scope, "type": "http"})
        if match.name == "FULL":
            return str(getattr(route, "path", "<unmatched>"))
        if match.name == "PARTIAL" and partial == "<unmatched>":  # right path, wrong method
            partial = str(getattr(route, "path", partial))
    return partial
