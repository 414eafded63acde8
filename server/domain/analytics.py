"""The analytics reports and the pure rules behind them: percentiles, health score, advice.

The database layer computes aggregates; everything here is arithmetic on them, so that the
REST and GraphQL adapters shape the same reports and the tests can check the rules directly.

Percentiles use ONE definition everywhere (SQL on both dialects and `nearest_rank` here):
the nearest-rank method, the value at 1-based rank ceil(p * n) of the ascending values.

Health score (0-100, one decimal), from four rates, each 0 when its denominator is 0:
    F = failed / (completed + failed)       of tasks that finished in the last 24 h
    R = retried / total                     share of tasks created in the last 24 h that
                                            needed a second attempt of some step
    X = min(1, exhausted / total)           steps that failed for good (retries exhausted or
                                            permanent error), per task created in the last 24 h
    S = stuck / active                      steps stuck right now (ready, due for retry, or
                                            holding an expired lease, for longer than
                                            `stuck_after`) among steps of unfinished tasks
    score = 100 * (1 - 0.4 F - 0.2 R - 0.2 X - 0.2 S), clamped to [0, 100]
"""

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from server.domain.errors import ValidationFailed
from server.domain.inputs import text_filter_problems

PERCENTILES = (0.5, 0.95, 0.99)
TREND_WINDOWS = (("1h", 1), ("4h", 4), ("24h", 24))
MAX_PERIOD_HOURS = 8760


def nearest_rank(ascending: Sequence[float], p: float) -> float | None:
    """The p-quantile by nearest rank (None for no values); `ascending` must be sorted."""
    if not ascending:
        return None
    rank = max(1, math.ceil(p * len(ascending)))
    return ascending[rank - 1]


@dataclass(frozen=True, slots=True)
class Trend:
    """Tasks that finished within one window: share completed, mean duration of those."""

    completion_rate: float | None
    avg_duration_ms: int | None


@dataclass(frozen=True, slots=True)
class TaskStatistics:
    """Tasks created in the last 24 hours."""

    total_tasks: int
    completed: int
    failed: int
    retried: int


@dataclass(frozen=True, slots=True)
class ProcessingTimes:
    """Nearest-rank percentiles (ms) of the durations of tasks completed in the last 24 h."""

    p50: int | None
    p95: int | None
    p99: int | None


@dataclass(frozen=True, slots=True)
class HealthInputs:
    """The counts the health score is computed from (see the module docstring)."""

    completed: int = 0
    failed: int = 0
    total: int = 0
    retried: int = 0
    exhausted: int = 0
    stuck: int = 0
    active: int = 0


def _rate(part: int, whole: int) -> float:
    return min(1.0, part / whole) if whole > 0 else 0.0


def health_score(h: HealthInputs) -> float:
    """The documented 0-100 score."""
    penalty = (
        0.4 * _rate(h.failed, h.completed + h.failed)
        + 0.2 * _rate(h.retried, h.total)
        + 0.2 * _rate(h.exhausted, h.total)
        + 0.2 * _rate(h.stuck, h.active)
    )
    return round(max(0.0, min(100.0, 100.0 * (1.0 - penalty))), 1)


@dataclass(frozen=True, slots=True)
class PerformanceReport:
    """`GET /analytics/performance`."""

    system_health_score: float
    performance_trends: dict[str, Trend]
    task_statistics: TaskStatistics
    processing_times: ProcessingTimes

    def to_cache(self) -> dict[str, Any]:
        """The form kept in the report cache (Redis is shared by every server process, so
        it must not change under a rolling deploy). Not a wire shape: the REST and GraphQL
        adapters build theirs from the fields."""
        return asdict(self)

    @classmethod
    def from_cache(cls, data: dict[str, Any]) -> "PerformanceReport":
        """Inverse of `to_cache`."""
        return cls(
            system_health_score=data["system_health_score"],
            performance_trends={k: Trend(**v) for k, v in data["performance_trends"].items()},
            task_statistics=TaskStatistics(**data["task_statistics"]),
            processing_times=ProcessingTimes(**data["processing_times"]),
        )


@dataclass(frozen=True, slots=True)
class BottleneckScope:
    """Which tasks a bottleneck analysis looks at."""

    namespace: str | None = None
    name: str | None = None
    version: str | None = None
    period_hours: int = 24

    def __post_init__(self) -> None:
        problems = text_filter_problems(
            {"namespace": self.namespace, "name": self.name, "version": self.version}
        )
        if problems:
            raise ValidationFailed("Invalid filter", problems)

    def holds(self, namespace: str, name: str, version: str) -> bool:
        """Whether a handler's tasks are in this scope."""
        given = ((self.namespace, namespace), (self.name, name), (self.version, version))
        return all(wanted is None or wanted == value for wanted, value in given)

    def given(self) -> dict[str, str]:
        """The filters that were given, by name."""
        given = {"namespace": self.namespace, "name": self.name, "version": self.version}
        return {k: v for k, v in given.items() if v is not None}


@dataclass(frozen=True, slots=True)
class SlowTask:
    """One handler's tasks finished in the period."""

    task_name: str
    namespace: str
    version: str
    avg_duration_ms: int | None
    execution_count: int
    failure_rate: float


@dataclass(frozen=True, slots=True)
class SlowStep:
    """The seed's `slowest_steps` entry."""

    step_name: str
    task_name: str
    avg_duration_ms: int
    retry_rate: float


@dataclass(frozen=True, slots=True)
class ErrorPattern:
    """Failed attempts by error class, and the steps they hit."""

    error_type: str
    frequency: int
    affected_steps: list[str]


@dataclass(frozen=True, slots=True)
class Recommendation:
    """Advice that quotes the figures it rests on in `rationale`."""

    type: str
    step: str
    task_name: str
    rationale: str
    current_timeout: float | None = None
    suggested_timeout: float | None = None
    current_retry_limit: int | None = None
    suggested_retry_limit: int | None = None


@dataclass(frozen=True, slots=True)
class BottleneckReport:
    """`GET /analytics/bottlenecks`."""

    analysis_period: str
    scope: dict[str, str]
    slowest_tasks: list[SlowTask]
    slowest_steps: list[SlowStep]
    error_patterns: list[ErrorPattern]
    recommendations: list[Recommendation] = field(default_factory=list)

    def to_cache(self) -> dict[str, Any]:
        """Every field, as kept in the report cache (see `PerformanceReport.to_cache`); advice
        without the fields that do not apply to its type."""
        data = asdict(self)
        data["recommendations"] = [
            {k: v for k, v in r.items() if v is not None} for r in data["recommendations"]
        ]
        return data

    @classmethod
    def from_cache(cls, data: dict[str, Any]) -> "BottleneckReport":
        """Inverse of `to_cache`."""
        return cls(
            analysis_period=data["analysis_period"],
            scope=dict(data["scope"]),
            slowest_tasks=[SlowTask(**t) for t in data["slowest_tasks"]],
            slowest_steps=[SlowStep(**s) for s in data["slowest_steps"]],
            error_patterns=[ErrorPattern(**e) for e in data["error_patterns"]],
            recommendations=[Recommendation(**r) for r in data["recommendations"]],
        )


def period_label(hours: int) -> str:
    """'24 hours', '1 hour'."""
    return f"{hours} hour" if hours == 1 else f"{hours} hours"
