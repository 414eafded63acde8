"""GraphQL analytics and health resolve through the same services (and cache) as REST.

Runs `AnalyticsQuery` in a schema of its own, so it holds whether or not the schema owner has
merged it into Query yet; the merged schema is covered by the GraphQL suite.
"""

from types import SimpleNamespace

import strawberry

from graphql_schema.analytics import AnalyticsQuery
from tests.api.test_observability import run_payment

QUERY = """
query {
  analytics {
    performance {
      systemHealthScore
      performanceTrends { window completionRate avgDurationMs }
      taskStatistics { totalTasks completed failed retried }
      processingTimes { p50 p95 p99 }
      generatedAt cacheAgeSeconds
    }
    bottlenecks(namespace: "payments", periodHours: 24) {
      analysisPeriod scope
      slowestTasks { taskName namespace version executionCount failureRate avgDurationMs }
      slowestSteps { stepName taskName avgDurationMs retryRate }
      errorPatterns { errorType frequency affectedSteps }
      recommendations { type step rationale }
    }
  }
  health {
    status reasons checks { name ok latencyMs error }
    tasks { status count } readySteps stuckSteps liveWorkers { workerId lastSeenAt }
  }
}
"""


async def test_analytics_and_health_over_graphql_match_rest(client, engine):
    await run_payment(client, engine)
    rest = (await client.get("/tasker/analytics/performance")).json()
    schema = strawberry.Schema(query=AnalyticsQuery)
    result = await schema.execute(QUERY, context_value=SimpleNamespace(services=engine))
    assert result.errors is None, result.errors
    data = result.data
    perf = data["analytics"]["performance"]
    assert perf["systemHealthScore"] == rest["system_health_score"]
    assert perf["taskStatistics"]["totalTasks"] == rest["task_statistics"]["total_tasks"] == 1
    assert perf["processingTimes"]["p50"] == rest["processing_times"]["p50"]
    assert [t["window"] for t in perf["performanceTrends"]] == ["1h", "4h", "24h"]
    assert perf["cacheAgeSeconds"] >= 0  # REST computed it first: served from the cache
    bottlenecks = data["analytics"]["bottlenecks"]
    assert bottlenecks["analysisPeriod"] == "24 hours"
    assert bottlenecks["scope"] == {"namespace": "payments"}
    assert bottlenecks["slowestTasks"][0]["namespace"] == "payments"
    health = data["health"]
    assert health["status"] == "healthy"
    assert {c["name"] for c in health["checks"]} == {"database", "broker"}
    assert health["liveWorkers"]


async def test_an_invalid_period_is_a_graphql_error_naming_the_argument(engine):
    schema = strawberry.Schema(query=AnalyticsQuery)
    result = await schema.execute(
        "{ analytics { bottlenecks(periodHours: 0) { analysisPeriod } } }",
        context_value=SimpleNamespace(services=engine),
    )
    assert result.errors and "period" in str(result.errors[0].original_error.details)
