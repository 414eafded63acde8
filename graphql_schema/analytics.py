"""GraphQL `analytics { performance bottlenecks(...) }` and `health`, over the same services
(and the same cache) as `GET /tasker/analytics/*` and `GET /tasker/health/status`.

`AnalyticsQuery` is a field mixin for `Query`; the schema owner adds it to Query's bases and
lists `Query.analytics` (tasker.analytics:index) and `Query.health`
(tasker.health_status:index) in the permission table.
"""

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, cast

import strawberry
from strawberry.scalars import JSON

from graphql_schema.context import Info
from server.domain.analytics import BottleneckReport, PerformanceReport
from server.services.analytics import Timed
from server.services.health import StatusReport


def _arg(description: str) -> Any:
    return strawberry.argument(description=description)


@strawberry.type(name="PerformanceTrend", description="Tasks that finished within one window.")
class TrendType:
    window: str = strawberry.field(description="1h, 4h or 24h.")
    completion_rate: float | None = strawberry.field(
        description="Completed / (completed + failed); null when none finished."
    )
    avg_duration_ms: int | None = strawberry.field(description="Mean duration of completed.")


@strawberry.type(name="TaskStatistics", description="Tasks created in the last 24 hours.")
class TaskStatisticsType:
    total_tasks: int = strawberry.field(description="Tasks created.")
    completed: int = strawberry.field(description="Of those, complete now.")
    failed: int = strawberry.field(description="Of those, in error now.")
    retried: int = strawberry.field(description="Of those, with a step attempted twice or more.")


@strawberry.type(
    name="ProcessingTimes",
    description="Nearest-rank percentiles (ms) of tasks completed in the last 24 hours.",
)
class ProcessingTimesType:
    p50: int | None = strawberry.field(description="Median.")
    p95: int | None = strawberry.field(description="95th percentile.")
    p99: int | None = strawberry.field(description="99th percentile.")


@strawberry.type(name="Performance", description="System-wide performance (cached 90 s).")
class PerformanceType:
    system_health_score: float = strawberry.field(description="0-100; formula in the docs.")
    performance_trends: list[TrendType] = strawberry.field(description="1h, 4h and 24h.")
    task_statistics: TaskStatisticsType = strawberry.field(description="Last 24 hours.")
    processing_times: ProcessingTimesType = strawberry.field(description="Task durations.")
    generated_at: datetime = strawberry.field(description="When the figures were computed.")
    cache_age_seconds: float = strawberry.field(description="How old they are now.")

    @classmethod
    def from_timed(cls, timed: Timed[PerformanceReport]) -> "PerformanceType":
        r = timed.report
        return cls(
            system_health_score=r.system_health_score,
            performance_trends=[
                TrendType(
                    window=k, completion_rate=t.completion_rate, avg_duration_ms=t.avg_duration_ms
                )
                for k, t in r.performance_trends.items()
            ],
            task_statistics=TaskStatisticsType(**vars_of(r.task_statistics)),
            processing_times=ProcessingTimesType(**vars_of(r.processing_times)),
            generated_at=timed.generated_at,
            cache_age_seconds=timed.age_seconds,
        )


def vars_of(obj: Any) -> dict[str, Any]:
    """A slotted dataclass's fields as keyword arguments."""
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}


@strawberry.type(name="SlowTask", description="One handler's tasks finished in the period.")
class SlowTaskType:
    task_name: str = strawberry.field(description="Handler name.")
    namespace: str = strawberry.field(description="Handler namespace.")
    version: str = strawberry.field(description="Handler version.")
    avg_duration_ms: int | None = strawberry.field(description="Mean duration of completed.")
    execution_count: int = strawberry.field(description="Tasks finished (complete or error).")
    failure_rate: float = strawberry.field(description="Share that ended in error.")


@strawberry.type(name="SlowStep", description="One step of one handler in the period.")
class SlowStepType:
    step_name: str = strawberry.field(description="Step name.")
    task_name: str = strawberry.field(description="Handler name.")
    avg_duration_ms: int = strawberry.field(description="Mean duration of the last attempts.")
    retry_rate: float = strawberry.field(description="Share needing more than one attempt.")


@strawberry.type(name="ErrorPattern", description="Failed attempts of one error class.")
class ErrorPatternType:
    error_type: str = strawberry.field(description="Error class or code.")
    frequency: int = strawberry.field(description="Failed attempts.")
    affected_steps: list[str] = strawberry.field(description="Steps it hit, by name.")


@strawberry.type(name="Recommendation", description="Advice quoting the figures it rests on.")
class RecommendationType:
    type: str = strawberry.field(description="timeout_optimization or retry_limit.")
    step: str = strawberry.field(description="The step it concerns.")
    task_name: str = strawberry.field(description="Its handler.")
    rationale: str = strawberry.field(description="The figures behind it.")
    current_timeout: float | None = strawberry.field(description="Seconds (timeout advice).")
    suggested_timeout: float | None = strawberry.field(description="Seconds (timeout advice).")
    current_retry_limit: int | None = strawberry.field(description="Retry advice.")
    suggested_retry_limit: int | None = strawberry.field(description="Retry advice.")


@strawberry.type(name="Bottlenecks", description="Bottleneck analysis (cached 2 min per scope).")
class BottlenecksType:
    analysis_period: str = strawberry.field(description="E.g. '24 hours'.")
    scope: JSON = strawberry.field(description="The filters given.")
    slowest_tasks: list[SlowTaskType] = strawberry.field(description="Slowest handlers first.")
    slowest_steps: list[SlowStepType] = strawberry.field(description="Slowest steps first.")
    error_patterns: list[ErrorPatternType] = strawberry.field(description="Most frequent first.")
    recommendations: list[RecommendationType] = strawberry.field(description="Advice.")
    generated_at: datetime = strawberry.field(description="When the figures were computed.")
    cache_age_seconds: float = strawberry.field(description="How old they are now.")

    @classmethod
    def from_timed(cls, timed: Timed[BottleneckReport]) -> "BottlenecksType":
        r = timed.report

        def each(kind: Any, items: list[Any]) -> list[Any]:
            return [kind(**vars_of(i)) for i in items]

        return cls(
            analysis_period=r.analysis_period,
            scope=cast(JSON, dict(r.scope)),
            slowest_tasks=each(SlowTaskType, r.slowest_tasks),
            slowest_steps=each(SlowStepType, r.slowest_steps),
            error_patterns=each(ErrorPatternType, r.error_patterns),
            recommendations=each(RecommendationType, r.recommendations),
            generated_at=timed.generated_at,
            cache_age_seconds=timed.age_seconds,
        )


async def resolve_performance(info: Info) -> PerformanceType:
    return PerformanceType.from_timed(await info.context.services.analytics.performance())


async def resolve_bottlenecks(
    info: Info,
    namespace: Annotated[str | None, _arg("Only this namespace.")] = None,
    name: Annotated[str | None, _arg("Only this handler name.")] = None,
    version: Annotated[str | None, _arg("Only this handler version.")] = None,
    period_hours: Annotated[int, _arg("Hours to analyse, 1 to 8760.")] = 24,
) -> BottlenecksType:
    timed = await info.context.services.analytics.bottlenecks(
        namespace=namespace, name=name, version=version, period_hours=period_hours
    )
    return BottlenecksType.from_timed(timed)


@strawberry.type(name="Analytics", description="Performance and bottleneck reports.")
class AnalyticsType:
    performance: PerformanceType = strawberry.field(
        resolver=resolve_performance, description="System-wide performance (as REST's)."
    )
    bottlenecks: BottlenecksType = strawberry.field(
        resolver=resolve_bottlenecks,
        description="Bottlenecks for a scope over the last `periodHours` hours.",
    )


@strawberry.type(name="HealthCheck", description="One dependency probe.")
class HealthCheckType:
    name: str = strawberry.field(description="database or broker.")
    ok: bool = strawberry.field(description="Whether it answered in time.")
    latency_ms: float | None = strawberry.field(description="Round trip, when it answered.")
    error: str | None = strawberry.field(description="Why it failed.")


@strawberry.type(name="StatusCount", description="How many rows are in one state.")
class StatusCountType:
    status: str = strawberry.field(description="The state.")
    count: int = strawberry.field(description="Rows in it.")


@strawberry.type(name="LiveWorker", description="A worker process seen through its heartbeat.")
class LiveWorkerType:
    worker_id: str = strawberry.field(description="hostname:pid:random.")
    hostname: str = strawberry.field(description="Where it runs.")
    pid: int = strawberry.field(description="Its process id.")
    started_at: datetime = strawberry.field(description="When it started.")
    last_seen_at: datetime = strawberry.field(description="Its latest heartbeat.")


@strawberry.type(name="Health", description="Detailed health, as GET /tasker/health/status.")
class HealthType:
    status: str = strawberry.field(description="healthy or unhealthy.")
    reasons: list[str] = strawberry.field(description="Why it is unhealthy (empty if healthy).")
    checked_at: datetime = strawberry.field(description="When this was measured.")
    checks: list[HealthCheckType] = strawberry.field(description="Database and broker probes.")
    tasks: list[StatusCountType] = strawberry.field(description="Tasks by status.")
    steps: list[StatusCountType] = strawberry.field(description="Steps by status.")
    retries: list[StatusCountType] = strawberry.field(
        description="Errored steps: backing_off, due, exhausted."
    )
    ready_steps: int | None = strawberry.field(description="Steps that could run now.")
    stuck_steps: int | None = strawberry.field(description="Ready, due or leased too long.")
    oldest_ready_step_age_seconds: float | None = strawberry.field(
        description="How long the longest-waiting ready step has waited."
    )
    live_workers: list[LiveWorkerType] = strawberry.field(description="Recent heartbeats.")

    @classmethod
    def from_report(cls, report: StatusReport) -> "HealthType":
        work = report.work

        def counts(by_status: Mapping[str, int] | None) -> list[StatusCountType]:
            return [StatusCountType(status=k, count=v) for k, v in (by_status or {}).items()]

        backlog = work.backlog if work else None
        return cls(
            status="healthy" if report.healthy else "unhealthy",
            reasons=list(report.reasons),
            checked_at=report.checked_at,
            checks=[
                HealthCheckType(name=c.name, ok=c.ok, latency_ms=c.latency_ms, error=c.error)
                for c in report.checks
            ],
            tasks=counts(work.tasks if work else None),
            steps=counts(work.steps if work else None),
            retries=counts(work.retries if work else None),
            ready_steps=backlog.ready_steps if backlog else None,
            stuck_steps=backlog.stuck_steps if backlog else None,
            oldest_ready_step_age_seconds=(
                backlog.oldest_ready_step_age_seconds if backlog else None
            ),
            live_workers=[
                LiveWorkerType(
                    worker_id=w.worker.worker_id,
                    hostname=w.worker.hostname,
                    pid=w.worker.pid,
                    started_at=w.worker.started_at,
                    last_seen_at=w.worker.last_seen_at,
                )
                for w in (work.workers if work else ())
            ],
        )


def resolve_analytics() -> AnalyticsType:
    return AnalyticsType()


async def resolve_health(info: Info) -> HealthType:
    return HealthType.from_report(await info.context.services.health.status())


@strawberry.type(description="Analytics and health queries (merged into Query).")
class AnalyticsQuery:
    analytics: AnalyticsType = strawberry.field(
        resolver=resolve_analytics, description="Performance and bottleneck reports (cached)."
    )
    health: HealthType = strawberry.field(
        resolver=resolve_health,
        description="Detailed health: dependencies, work by state, workers.",
    )
