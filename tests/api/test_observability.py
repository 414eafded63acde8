"""REST analytics, health and metrics endpoints over the running embedded engine."""

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from server.app import create_app
from server.container import build_services
from server.db.setup import close_database, open_database
from server.domain.views import CreateTask
from server.infra.ports import NullDispatcher
from tests.api.rest_support import PAYMENT
from tests.conftest import BACKEND, fast_settings
from tests.support.cluster import free_port
from tests.support.waiting import wait_for_task

PERFORMANCE_KEYS = {
    "system_health_score",
    "performance_trends",
    "task_statistics",
    "processing_times",
}
BOTTLENECK_KEYS = {
    "analysis_period",
    "scope",
    "slowest_tasks",
    "slowest_steps",
    "error_patterns",
    "recommendations",
}


async def run_payment(client: httpx.AsyncClient, engine) -> str:  # type: ignore[no-untyped-def]
    created = await client.post(
        "/tasker/tasks",
        json={
            "name": "process_payment",
            "namespace": "payments",
            "version": "2.1.0",
            "context": PAYMENT,
        },
    )
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]
    await wait_for_task(engine, task_id)
    return str(task_id)


async def test_performance_has_the_seed_shape_and_says_how_old_it_is(client, engine):
    await run_payment(client, engine)
    first = await client.get("/tasker/analytics/performance")
    assert first.status_code == 200
    body = first.json()
    assert set(body) == PERFORMANCE_KEYS
    assert set(body["performance_trends"]) == {"1h", "4h", "24h"}
    assert body["task_statistics"]["total_tasks"] == 1
    assert body["task_statistics"]["completed"] == 1
    assert body["performance_trends"]["1h"]["completion_rate"] == 1.0
    assert isinstance(body["processing_times"]["p50"], int)
    assert first.headers["X-Tasker-Cache"] == "miss" and first.headers["Age"] == "0"
    assert first.headers["Cache-Control"] == "private, max-age=90"
    second = await client.get("/tasker/analytics/performance")
    assert second.headers["X-Tasker-Cache"] == "hit"
    assert second.headers["X-Tasker-Generated-At"] == first.headers["X-Tasker-Generated-At"]
    assert second.json() == body


async def test_bottlenecks_has_the_seed_shape_and_scope(client, engine):
    await run_payment(client, engine)
    response = await client.get(
        "/tasker/analytics/bottlenecks", params={"namespace": "payments", "period": "24"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == BOTTLENECK_KEYS
    assert body["analysis_period"] == "24 hours"
    assert body["scope"] == {"namespace": "payments"}
    [task] = body["slowest_tasks"]
    assert set(task) == {"task_name", "avg_duration_ms", "execution_count", "failure_rate"}
    assert (task["task_name"], task["execution_count"], task["failure_rate"]) == (
        "process_payment",
        1,
        0.0,
    )
    assert {s["step_name"] for s in body["slowest_steps"]} == {
        "validate_payment",
        "charge_card",
        "update_order",
        "send_confirmation",
    }
    assert all(
        set(s) == {"step_name", "task_name", "avg_duration_ms", "retry_rate"}
        for s in body["slowest_steps"]
    )
    assert response.headers["Cache-Control"] == "private, max-age=120"
    other = await client.get("/tasker/analytics/bottlenecks", params={"namespace": "inventory"})
    assert other.json()["slowest_tasks"] == []


@pytest.mark.parametrize("period", ["0", "-3", "8761", "abc", "1.5", ""])
async def test_bottleneck_period_must_be_a_positive_integer_up_to_a_year(client, period):
    response = await client.get("/tasker/analytics/bottlenecks", params={"period": period})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "ValidationError" and "period" in error["details"]


async def test_health_endpoints_are_never_cached(client):
    for path in ("/tasker/health/live", "/tasker/health/ready", "/tasker/health/status"):
        response = await client.get(path)
        assert response.status_code == 200, (path, response.text)
        assert response.headers["Cache-Control"] == "no-store"
    status = (await client.get("/tasker/health/status")).json()
    assert status["status"] == "healthy" and status["reasons"] == []
    assert status["workers"]["live"] >= 1
    assert status["workers"]["workers"][0]["last_seen_seconds_ago"] >= 0
    assert set(status["tasks"]) >= {"pending", "in_progress", "complete", "error"}
    assert set(status["retries"]) == {"backing_off", "due", "exhausted"}
    assert status["database"]["dialect"] in ("sqlite", "postgres")


def unreachable_database_url(tmp_path) -> str:  # type: ignore[no-untyped-def]
    if BACKEND == "postgres":
        return f"postgres://postgres@127.0.0.1:{free_port()}/nowhere"
    return f"sqlite://{tmp_path / 'no-such-dir' / 'tasker.db'}"


async def test_health_is_503_when_the_database_is_unreachable(tmp_path, registry):
    url = unreachable_database_url(tmp_path)
    services = build_services(fast_settings(url), NullDispatcher(), registry=registry)
    await open_database(url, migrate=False)  # connects lazily: the probe is what fails
    try:
        app = create_app(services=services)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/tasker/health/live")).status_code == 200
            ready = await client.get("/tasker/health/ready")
            assert ready.status_code == 503
            assert ready.headers["Cache-Control"] == "no-store"
            error = ready.json()["error"]
            assert error["code"] == "NOT_READY" and list(error["details"]) == ["database"]
            status = await client.get("/tasker/health/status")
            assert status.status_code == 503
            assert status.json()["error"]["details"]["reasons"][0].startswith("database")
    finally:
        await close_database()


async def test_health_is_503_when_redis_is_unreachable(database_url, registry):
    closed = f"redis://127.0.0.1:{free_port()}/0"
    settings = fast_settings(database_url, broker_url=closed, health_timeout_seconds=1.0)
    services = build_services(settings, NullDispatcher(), registry=registry)
    await services.open()
    try:
        app = create_app(services=services)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            ready = await client.get("/tasker/health/ready")
            assert ready.status_code == 503
            assert list(ready.json()["error"]["details"]) == ["broker"]
            status = await client.get("/tasker/health/status")
            assert status.status_code == 503
            body = status.json()["error"]["details"]
            assert body["checks"]["database"]["status"] == "ok"
            assert any(r.startswith("broker unreachable") for r in body["reasons"])
    finally:
        await services.close()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(metrics, name, **labels):  # type: ignore[no-untyped-def]
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_parse_and_move_when_tasks_run(client, engine):
    before = samples((await client.get("/tasker/metrics")).text)
    await run_payment(client, engine)
    response = await client.get("/tasker/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = samples(response.text)
    ns = {"namespace": "payments"}

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("tasker_tasks_created_total", **ns) == 1
    assert moved("tasker_tasks_completed_total", **ns) == 1
    assert moved("tasker_step_executions_total", outcome="complete", **ns) == 4
    assert moved("tasker_task_duration_seconds_count", status="complete", **ns) == 1
    assert moved("tasker_step_duration_seconds_count", outcome="complete", **ns) == 4
    # process_payment is a chain of four: three hand-offs from a completed parent.
    assert moved("tasker_step_handoff_seconds_count", **ns) == 3
    assert value(after, "tasker_live_workers") >= 1
    assert value(after, "tasker_tasks", status="in_progress") == 0
    assert ("tasker_oldest_ready_step_age_seconds", ()) in after


async def test_failures_and_retries_are_counted(client, engine):
    before = samples((await client.get("/tasker/metrics")).text)
    context = {"fail": {"b": 1}, "sleep": 0, "permanent": "d"}  # c is a sync handler
    task, _ = await engine.tasks.create_task(
        CreateTask(namespace="shapes", name="linear", context=context)
    )
    await wait_for_task(engine, task.id)
    after = samples((await client.get("/tasker/metrics")).text)
    ns = {"namespace": "shapes"}
    assert (
        value(after, "tasker_step_executions_total", outcome="retry", **ns)
        - value(before, "tasker_step_executions_total", outcome="retry", **ns)
        == 1
    )
    assert (
        value(after, "tasker_step_retries_total", **ns)
        - value(before, "tasker_step_retries_total", **ns)
        == 1
    )
    assert (
        value(after, "tasker_step_executions_total", outcome="failed", **ns)
        - value(before, "tasker_step_executions_total", outcome="failed", **ns)
        == 1
    )
    assert (
        value(after, "tasker_tasks_failed_total", **ns)
        - value(before, "tasker_tasks_failed_total", **ns)
        == 1
    )


async def test_http_requests_are_counted_by_route_template(app, engine):
    transport = httpx.ASGITransport(app=app)  # create_app installs HttpMetricsMiddleware
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        before = samples((await client.get("/tasker/metrics")).text)
        await client.get("/tasker/tasks/7b6f1f52-0000-4000-8000-000000000000")
        await client.get("/tasker/no/such/route")
        after = samples((await client.get("/tasker/metrics")).text)
    key = {"method": "GET", "route": "/tasker/tasks/{id}", "status": "404"}
    assert (
        value(after, "tasker_http_requests_total", **key)
        - value(before, "tasker_http_requests_total", **key)
        == 1
    )
    assert (
        value(after, "tasker_http_requests_total", method="GET", route="<unmatched>", status="404")
        >= 1
    )
    assert (
        value(
            after,
            "tasker_http_request_duration_seconds_count",
            method="GET",
            route="/tasker/metrics",
        )
        >= 1
    )
    assert not any("7b6f1f52" in str(labels) for _, labels in after)
