"""Synthetic history for `bench.seed`: a five-handler catalogue and a deterministic generator.

Each task is four linear steps (a -> b -> c -> d). Durations are log-normal around each step's
mean and capped at its timeout (as the runner's `wait_for` caps them); steps fail transiently
(then succeed after one or two retries, with exponential backoff between attempts), fail for
good after exhausting three attempts, or are cancelled with their task, at per-step rates.
Rows come out as tuples in the column order of `TASK_COLUMNS`, `STEP_COLUMNS`, `EDGE_COLUMNS`.
"""

import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class StepSpec:
    """One step template: mean duration, timeout and how it tends to fail."""

    name: str
    mean_ms: float
    timeout_s: float | None
    p_retry: float  # chance of one or more transient failures before the last attempt
    p_fail: float  # chance of failing for good
    error: str


@dataclass(frozen=True)
class HandlerSpec:
    """A synthetic handler: identity, share of traffic, four steps."""

    namespace: str
    name: str
    version: str
    weight: float
    steps: tuple[StepSpec, StepSpec, StepSpec, StepSpec]


CATALOGUE = (
    HandlerSpec(
        "payments",
        "process_payment",
        "2.1.0",
        0.35,
        (
            StepSpec("validate_payment", 40, 10, 0.01, 0.001, "ValidationError"),
            StepSpec("check_fraud", 250, 30, 0.03, 0.002, "NetworkTimeoutError"),
            StepSpec("charge_card", 900, 30, 0.08, 0.01, "CARD_DECLINED"),
            StepSpec("send_confirmation", 120, 30, 0.02, 0.001, "SMTPError"),
        ),
    ),
    HandlerSpec(
        "inventory",
        "process_order",
        "1.0.0",
        0.25,
        (
            StepSpec("validate_order", 30, None, 0.01, 0.001, "ValidationError"),
            StepSpec("inventory_check", 400, 30, 0.04, 0.002, "NetworkTimeoutError"),
            # Runs close to its 3 s timeout: the benchmark's timeout recommendation comes from here.
            StepSpec("payment_processing", 2400, 3, 0.10, 0.01, "StepTimeout"),
            StepSpec("ship_order", 300, 30, 0.02, 0.001, "CarrierError"),
        ),
    ),
    HandlerSpec(
        "inventory",
        "update_stock",
        "1.2.0",
        0.15,
        (
            StepSpec("lock_sku", 20, None, 0.01, 0.0, "LockError"),
            StepSpec("read_levels", 60, None, 0.01, 0.0, "DatabaseError"),
            StepSpec("write_levels", 80, None, 0.02, 0.001, "DatabaseError"),
            StepSpec("publish_change", 50, None, 0.01, 0.0, "NetworkTimeoutError"),
        ),
    ),
    HandlerSpec(
        "notifications",
        "send_email",
        "2.0.0",
        0.2,
        (
            StepSpec("load_template", 15, None, 0.0, 0.0, "TemplateError"),
            StepSpec("render", 35, None, 0.0, 0.001, "TemplateError"),
            StepSpec("deliver", 600, 60, 0.12, 0.005, "SMTPError"),
            StepSpec("record_delivery", 25, None, 0.01, 0.0, "DatabaseError"),
        ),
    ),
    HandlerSpec(
        "analytics",
        "customer_analytics",
        "1.0.0",
        0.05,
        (
            StepSpec("extract", 4000, 600, 0.05, 0.002, "NetworkTimeoutError"),
            StepSpec("transform", 2500, 600, 0.01, 0.001, "ValueError"),
            StepSpec("load", 1500, 600, 0.03, 0.002, "DatabaseError"),
            StepSpec("report", 300, None, 0.01, 0.0, "ValueError"),
        ),
    ),
)
RETRY_LIMIT = 3
P_CANCEL = 0.003

TASK_COLUMNS = (
    "id",
    "named_task_id",
    "namespace",
    "name",
    "version",
    "status",
    "context",
    "tags",
    "bypass_steps",
    "identity_hash",
    "requested_at",
    "created_at",
    "updated_at",
    "completed_at",
)
STEP_COLUMNS = (
    "id",
    "task_id",
    "name",
    "position",
    "handler_class",
    "status",
    "attempts",
    "retry_limit",
    "retryable",
    "skippable",
    "timeout_seconds",
    "last_error",
    "error_class",
    "next_attempt_at",
    "dispatched_at",
    "started_at",
    "completed_at",
    "created_at",
    "updated_at",
)
EDGE_COLUMNS = ("task_id", "from_step_id", "to_step_id")


@dataclass
class Batch:
    """Rows for one COPY round."""

    tasks: list[tuple[Any, ...]]
    steps: list[tuple[Any, ...]]
    edges: list[tuple[Any, ...]]


class Generator:
    """Deterministic rows: tasks spread uniformly over `days` days before `now`."""

    def __init__(
        self,
        handler_ids: dict[tuple[str, str, str], int],
        *,
        days: float,
        now: datetime,
        seed: int,
        first_step_id: int,
    ) -> None:
        self.handler_ids = handler_ids
        self.span = days * 86400.0
        self.now = now
        self.rng = random.Random(seed)
        self.next_step_id = first_step_id
        self.weights = [h.weight for h in CATALOGUE]
        self.total = 1
        self.index = 0

    def batches(self, total: int, size: int) -> Iterator[Batch]:
        """`total` tasks in batches of `size`."""
        self.total, self.index = total, 0
        done = 0
        while done < total:
            n = min(size, total - done)
            batch = Batch([], [], [])
            for _ in range(n):
                self._task(batch)
            done += n
            yield batch

    def _task(self, batch: Batch) -> None:
        rng = self.rng
        spec = rng.choices(CATALOGUE, self.weights)[0]
        task_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        # Creation times advance with the insert order, as they do in a live system (so recent
        # rows sit together on disk, as they would in production).
        offset = (self.index + rng.random()) / self.total * self.span
        self.index += 1
        created = self.now - timedelta(seconds=self.span - offset)
        cursor = created + timedelta(milliseconds=rng.uniform(2, 40))
        cancel_at = rng.randrange(4) if rng.random() < P_CANCEL else None
        task_status, task_done = "complete", None
        ids = list(range(self.next_step_id, self.next_step_id + 4))
        self.next_step_id += 4
        rest: str | None = None  # what the steps after a halt look like
        for pos, step in enumerate(spec.steps):
            if rest is not None:
                batch.steps.append(self._idle(step, pos, ids[pos], task_id, created, rest))
                continue
            if cancel_at == pos:
                batch.steps.append(self._idle(step, pos, ids[pos], task_id, created, "cancelled"))
                rest, task_status, task_done = "cancelled", "cancelled", cursor
                continue
            row, cursor, outcome = self._step(step, pos, ids[pos], task_id, created, cursor)
            batch.steps.append(row)
            if outcome == "error":
                rest, task_status, task_done = "pending", "error", cursor
            elif outcome == "running":
                rest, task_status = "pending", "in_progress"
        if task_status == "complete":
            task_done = cursor
        if task_done is not None and task_done > self.now:
            task_status, task_done = "in_progress", None
        batch.tasks.append(
            (
                task_id,
                self.handler_ids[(spec.namespace, spec.name, spec.version)],
                spec.namespace,
                spec.name,
                spec.version,
                task_status,
                "{}",
                "[]",
                "[]",
                task_id.hex,
                created,
                created,
                task_done or created,
                task_done,
            )
        )
        batch.edges.extend((task_id, ids[i], ids[i + 1]) for i in range(3))

    @staticmethod
    def _idle(
        step: StepSpec, pos: int, step_id: int, task_id: uuid.UUID, created: datetime, status: str
    ) -> tuple[Any, ...]:
        """A step that never ran: waiting on a parent that failed or runs, or cancelled."""
        return (
            step_id,
            task_id,
            step.name,
            pos,
            f"bench.handlers:{step.name}",
            status,
            0,
            RETRY_LIMIT,
            True,
            False,
            step.timeout_s,
            None,
            None,
            None,
            None,
            None,
            None,
            created,
            created,
        )

    def _step(
        self,
        step: StepSpec,
        pos: int,
        step_id: int,
        task_id: uuid.UUID,
        created: datetime,
        cursor: datetime,
    ) -> tuple[tuple[Any, ...], datetime, str]:
        """One step that became ready at `cursor`: the row, when its last attempt ended, and
        whether it is complete, failed for good (error) or still running."""
        rng = self.rng
        base = (step_id, task_id, step.name, pos, f"bench.handlers:{step.name}")
        limits = (RETRY_LIMIT, True, False, step.timeout_s)
        if cursor > self.now:  # its parent is still running
            return (
                (*base, "pending", 0, *limits, *([None] * 6), created, created),
                cursor,
                "running",
            )
        fail = rng.random() < step.p_fail
        retries = 0
        if fail:
            retries = RETRY_LIMIT - 1
        elif rng.random() < step.p_retry:
            retries = min(RETRY_LIMIT - 1, 1 + int(rng.expovariate(1.5)))
        started = cursor
        for attempt in range(retries):
            started += timedelta(milliseconds=self._duration(step) + 1000 * 2**attempt)
        finished = started + timedelta(milliseconds=self._duration(step))
        attempts = retries + 1
        error = step.error if (fail or retries) else None
        if started > self.now:  # backing off before its next attempt
            row = (
                *base,
                "error",
                attempts - 1,
                *limits,
                f"{error} on attempt {attempts - 1}",
                error,
                started,
                cursor,
                None,
                None,
                created,
                cursor,
            )
            return row, started, "running"
        last = f"{error} on attempt {attempts - (0 if fail else 1)}" if error else None
        if finished > self.now:
            row = (
                *base,
                "in_progress",
                attempts,
                *limits,
                last,
                error,
                None,
                cursor,
                started,
                None,
                created,
                started,
            )
            return row, finished, "running"
        status = "error" if fail else "complete"
        row = (
            *base,
            status,
            attempts,
            *limits,
            last,
            error,
            None,
            cursor,
            started,
            finished,
            created,
            finished,
        )
        return row, finished + timedelta(milliseconds=rng.uniform(2, 30)), status

    def _duration(self, step: StepSpec) -> float:
        # Log-normal around the mean; timeouts cap an attempt as the runner's wait_for does.
        value = step.mean_ms * math.exp(self.rng.gauss(-0.125, 0.5))
        cap = (step.timeout_s or 300) * 1000
        return round(min(value, cap), 3)
