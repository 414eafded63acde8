"""Analytics and health views -> the REST JSON bodies of `/tasker/analytics/*` and
`/tasker/health/*` (`rest_compat.observability` serves them).

The services hand over typed views; the documented shapes, field order included, are built
here only. GraphQL builds its own types from the same views (`graphql_schema.analytics`).
"""

from typing import Any

from server.domain.analytics import BottleneckReport, PerformanceReport, Recommendation
from server.services.health import Check, PoolView, Readiness, StatusReport, WorkState


def performance(report: PerformanceReport) -> dict[str, Any]:
    """`GET /tasker/analytics/performance`."""
    stats, times = report.task_statistics, report.processing_times
    return {
        "system_health_score": report.system_health_score,
        "performance_trends": {
            window: {"completion_rate": t.completion_rate, "avg_duration_ms": t.avg_duration_ms}
            for window, t in report.performance_trends.items()
        },
        "task_statistics": {
            "total_tasks": stats.total_tasks,
            "completed": stats.completed,
            "failed": stats.failed,
            "retried": stats.retried,
        },
        "processing_times": {"p50": times.p50, "p95": times.p95, "p99": times.p99},
    }


def bottlenecks(report: BottleneckReport) -> dict[str, Any]:
    """`GET /tasker/analytics/bottlenecks` in the seed's shape, field for field: slowest tasks
    without their handler's namespace and version, advice without its handler (the rationale
    names it)."""
    return {
        "analysis_period": report.analysis_period,
        "scope": dict(report.scope),
        "slowest_tasks": [
            {
                "task_name": t.task_name,
                "avg_duration_ms": t.avg_duration_ms,
                "execution_count": t.execution_count,
                "failure_rate": t.failure_rate,
            }
            for t in report.slowest_tasks
        ],
        "slowest_steps": [
            {
                "step_name": s.step_name,
                "task_name": s.task_name,
                "avg_duration_ms": s.avg_duration_ms,
                "retry_rate": s.retry_rate,
            }
            for s in report.slowest_steps
        ],
        "error_patterns": [
            {
                "error_type": e.error_type,
                "frequency": e.frequency,
                "affected_steps": list(e.affected_steps),
            }
            for e in report.error_patterns
        ],
        "recommendations": [_recommendation(r) for r in report.recommendations],
    }


def _recommendation(rec: Recommendation) -> dict[str, Any]:
    """Only the fields that apply to its type."""
    given = {
        "type": rec.type,
        "step": rec.step,
        "rationale": rec.rationale,
        "current_timeout": rec.current_timeout,
        "suggested_timeout": rec.suggested_timeout,
        "current_retry_limit": rec.current_retry_limit,
        "suggested_retry_limit": rec.suggested_retry_limit,
    }
    return {k: v for k, v in given.items() if v is not None}


def check(probe: Check) -> dict[str, Any]:
    """`{"status": "ok"|"failed", "latency_ms"?, "error"?, "mode"?}`."""
    data: dict[str, Any] = {"status": "ok" if probe.ok else "failed"}
    if probe.latency_ms is not None:
        data["latency_ms"] = probe.latency_ms
    if probe.error:
        data["error"] = probe.error
    if probe.mode is not None:
        data["mode"] = probe.mode
    return data


def readiness(ready: Readiness) -> dict[str, Any]:
    """`GET /tasker/health/ready`: `{"status": "ready"|"not_ready", "checks": {name: check}}`."""
    return {
        "status": "ready" if ready.ok else "not_ready",
        "checks": {c.name: check(c) for c in ready.checks},
    }


def status(report: StatusReport) -> dict[str, Any]:
    """`GET /tasker/health/status`: status, reasons, checked_at, checks, then (when the
    database could be read) the work by state, backlog, connection pool and live workers."""
    data: dict[str, Any] = {
        "status": "healthy" if report.healthy else "unhealthy",
        "reasons": list(report.reasons),
        "checked_at": report.checked_at.isoformat(),
        "checks": {c.name: check(c) for c in report.checks},
    }
    if report.work is not None:
        data.update(_work(report.work))
    return data


def _work(work: WorkState) -> dict[str, Any]:
    backlog = work.backlog
    return {
        "tasks": dict(work.tasks),
        "steps": dict(work.steps),
        "retries": dict(work.retries),
        "backlog": {
            "ready_steps": backlog.ready_steps,
            "stuck_steps": backlog.stuck_steps,
            "oldest_ready_step_age_seconds": backlog.oldest_ready_step_age_seconds,
        },
        "database": _pool(work.database),
        "workers": {
            "live": len(work.workers),
            "live_within_seconds": work.live_within_seconds,
            "workers": [
                {
                    "worker_id": w.worker.worker_id,
                    "hostname": w.worker.hostname,
                    "pid": w.worker.pid,
                    "started_at": w.worker.started_at.isoformat(),
                    "last_seen_at": w.worker.last_seen_at.isoformat(),
                    "last_seen_seconds_ago": w.last_seen_seconds_ago,
                }
                for w in work.workers
            ],
        },
    }


def _pool(pool: PoolView) -> dict[str, Any]:
    """asyncpg tells size, idle, min and max; SQLite has one connection per process."""
    data: dict[str, Any] = {"dialect": pool.dialect, "size": pool.size}
    if pool.idle is not None:
        data["idle"] = pool.idle
    if pool.min is not None:
        data["min"] = pool.min
    data["max"] = pool.max
    return data
