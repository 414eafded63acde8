"""Analytics, health and metrics endpoints: thin adapters over the analytics and health services.

- `GET /tasker/analytics/performance`, `GET /tasker/analytics/bottlenecks`: the seed's shapes.
  The figures may come from the cache: `Age` (seconds since they were computed),
  `X-Tasker-Generated-At` and `X-Tasker-Cache: hit|miss` say how old they are.
- `GET /tasker/health/live|ready|status`: `Cache-Control: no-store`; 503 in the error envelope
  naming the failed checks (ready) or the reasons (status). live and ready never need auth.
- `GET /tasker/metrics`: Prometheus text for the whole deployment.

`operations` goes through the shared REST pipeline (permission hook, query validation, and
the OpenAPI document when listed there); live and ready are plain routes on purpose.
"""

from typing import Any

from pydantic import ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from rest_compat import report_json
from rest_compat.errors import error_response
from rest_compat.operations import Operation, Reply, routes_for, services_of
from rest_compat.params import Query, QueryInt, Text
from rest_compat.shapes import Shape
from server.domain import permissions as need
from server.domain.analytics import MAX_PERIOD_HOURS
from server.infra import metrics
from server.services.analytics import Timed

NO_STORE = {"Cache-Control": "no-store"}


class TrendOut(Shape):
    completion_rate: float | None = Field(description="Completed / (completed + failed)")
    avg_duration_ms: int | None = Field(description="Mean duration of the completed tasks")


class TaskStatisticsOut(Shape):
    total_tasks: int
    completed: int
    failed: int
    retried: int = Field(description="Tasks with a step attempted more than once")


class ProcessingTimesOut(Shape):
    p50: int | None
    p95: int | None
    p99: int | None


class PerformanceOut(Shape):
    system_health_score: float = Field(ge=0, le=100)
    performance_trends: dict[str, TrendOut] = Field(description="Keys 1h, 4h and 24h")
    task_statistics: TaskStatisticsOut
    processing_times: ProcessingTimesOut


class SlowTaskOut(Shape):
    task_name: str
    avg_duration_ms: int | None
    execution_count: int
    failure_rate: float


class SlowStepOut(Shape):
    step_name: str
    task_name: str
    avg_duration_ms: int
    retry_rate: float


class ErrorPatternOut(Shape):
    error_type: str
    frequency: int = Field(description="Failed attempts of this class")
    affected_steps: list[str]


class RecommendationOut(Shape):
    type: str = Field(description="timeout_optimization or retry_limit")
    step: str
    rationale: str
    current_timeout: float | None = None
    suggested_timeout: float | None = None
    current_retry_limit: int | None = None
    suggested_retry_limit: int | None = None


class BottlenecksOut(Shape):
    analysis_period: str
    scope: dict[str, str]
    slowest_tasks: list[SlowTaskOut]
    slowest_steps: list[SlowStepOut]
    error_patterns: list[ErrorPatternOut]
    recommendations: list[RecommendationOut]


class BottlenecksQuery(Query):
    namespace: Text | None = Field(None, max_length=128, description="Only this namespace")
    name: Text | None = Field(None, max_length=128, description="Only this handler name")
    version: Text | None = Field(None, max_length=64, description="Only this handler version")
    period: QueryInt = Field(24, ge=1, le=MAX_PERIOD_HOURS, description="Hours to analyse")


def _timed(body: dict[str, Any], timed: Timed[Any]) -> Response:
    headers = {
        "Cache-Control": f"private, max-age={int(timed.max_age_seconds)}",
        "Age": str(int(timed.age_seconds)),
        "X-Tasker-Generated-At": timed.generated_at.isoformat(),
        "X-Tasker-Cache": "hit" if timed.cached else "miss",
    }
    return JSONResponse(body, headers=headers)


async def performance(request: Request) -> Response:
    timed = await services_of(request).analytics.performance()
    return _timed(report_json.performance(timed.report), timed)


async def bottlenecks(request: Request, query: BottlenecksQuery) -> Response:
    timed = await services_of(request).analytics.bottlenecks(
        namespace=query.namespace,
        name=query.name,
        version=query.version,
        period_hours=query.period,
    )
    return _timed(report_json.bottlenecks(timed.report), timed)


async def health_live(request: Request) -> Response:
    """The process answers; nothing else is checked."""
    return JSONResponse({"status": "alive"}, headers=NO_STORE)


async def health_ready(request: Request) -> Response:
    readiness = await services_of(request).health.ready()
    if readiness.ok:
        return JSONResponse(report_json.readiness(readiness), headers=NO_STORE)
    failed = readiness.failed
    return error_response(
        503,
        "ServiceUnavailable",
        "NOT_READY",
        "; ".join(f"{c.name} unreachable: {c.error}" for c in failed),
        {c.name: [c.error or "failed"] for c in failed},
        headers=NO_STORE,
    )


async def health_status(request: Request) -> Response:
    report = await services_of(request).health.status()
    if report.healthy:
        return JSONResponse(report_json.status(report), headers=NO_STORE)
    return error_response(
        503,
        "ServiceUnavailable",
        "UNHEALTHY",
        "; ".join(report.reasons),
        report_json.status(report),
        headers=NO_STORE,
    )


async def metrics_text(request: Request) -> Response:
    body, content_type = metrics.render(await services_of(request).health.gauges())
    return Response(body, media_type=content_type, headers=NO_STORE)


class LiveOut(Shape):
    status: str = Field(description="Always `alive`")


class CheckOut(Shape):
    model_config = ConfigDict(extra="allow")

    status: str = Field(description="`ok` or `failed`")
    latency_ms: float | None = None
    error: str | None = None


class ReadyOut(Shape):
    status: str = Field(description="`ready` (a failed check answers 503 `NOT_READY`)")
    checks: dict[str, CheckOut] = Field(description="The database and broker checks by name")


STATUS_SCHEMA = {"type": "object", "description": "status, reasons, checks, work and workers"}
PROMETHEUS = {"type": "string", "description": "Prometheus text exposition format 0.0.4"}

# fmt: off
operations: list[Operation] = [
    Operation("GET", "/tasker/analytics/performance", performance,
              need.ANALYTICS, "System health score, trends and processing times",
              (Reply(200, "The report (cached 90 s; see the Age header)", PerformanceOut),),
              tag="analytics"),
    Operation("GET", "/tasker/analytics/bottlenecks", bottlenecks,
              need.ANALYTICS, "Slowest handlers and steps, errors and advice",
              (Reply(200, "The analysis (cached 2 min per scope)", BottlenecksOut),),
              tag="analytics"),
    Operation("GET", "/tasker/health/status", health_status,
              need.HEALTH_STATUS, "Detailed health; 503 with the reasons",
              (Reply(200, "Healthy (503 with the reasons otherwise)", schema=STATUS_SCHEMA),),
              tag="health"),
    Operation("GET", "/tasker/metrics", metrics_text,
              need.METRICS, "Prometheus metrics of the whole deployment",
              (Reply(200, "Metrics", media_type="text/plain", schema=PROMETHEUS),),
              tag="metrics"),
]

public_operations: list[Operation] = [
    Operation("GET", "/tasker/health/live", health_live,
              "", "Liveness: the process answers (never needs a token)",
              (Reply(200, "Alive", LiveOut),), tag="health", public=True),
    Operation("GET", "/tasker/health/ready", health_ready,
              "", "Readiness: database and broker reachable (never needs a token)",
              (Reply(200, "Ready; a failed check answers 503 naming it", ReadyOut),),
              errors=(503,), tag="health", public=True),
]
"""Documented only: `routes` serves them as plain routes, outside the token check."""
# fmt: on

routes: list[BaseRoute] = [
    *(Route(op.path, op.handler, methods=[op.method]) for op in public_operations),
    *routes_for(operations),
]
