"""A handler author's workflow run through `server.testing`: upstream results, permanent
failures explained as such, HTTP steps stubbed, failures in the log."""

import logging
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from tortoise.backends.base.executor import EXECUTOR_CACHE

from server.container import build_services
from server.db.models import Transition
from server.domain.views import CreateTask
from server.infra.ports import NullDispatcher
from server.registry.handler_registry import HandlerRegistry
from server.testing import tasker_test_env
from tests.conftest import fast_settings

HANDLERS = """
from server.handlers import PermanentError, StepContext, StepHandler

class Start(StepHandler):
    def process(self, step: StepContext):
        return {"order": step.context["order"]}

class Middle(StepHandler):
    def process(self, step: StepContext):
        return {"seen": sorted(step.parent_results)}

class Last(StepHandler):
    async def process(self, step: StepContext):
        upstream = await step.upstream_results()
        return {"parents": sorted(step.parent_results), "upstream": dict(upstream)}

class LastSync(StepHandler):
    def process(self, step: StepContext):
        return {"upstream": sorted(step.upstream_results_sync())}

class Decline(StepHandler):
    def process(self, step: StepContext):
        raise PermanentError("card declined", code="CARD_DECLINED")
"""

DEFINITION = """
name: chain
namespace_name: authoring
version: 1.0.0
step_templates:
  - {name: start, handler_class: "authoring_handlers:Start"}
  - {name: middle, handler_class: "authoring_handlers:Middle", depends_on_step: start}
  - {name: last, handler_class: "authoring_handlers:Last", depends_on_step: middle}
  - {name: last_sync, handler_class: "authoring_handlers:LastSync", depends_on_step: middle}
"""

FAILING = """
name: decline
namespace_name: authoring
version: 1.0.0
step_templates:
  - {name: charge, handler_class: "authoring_handlers:Decline", default_retry_limit: 3}
"""

HTTP = """
name: call_out
namespace_name: authoring
version: 1.0.0
step_templates:
  - name: charge
    handler_config:
      type: http
      url: "https://payments.invalid/charge/{context.order}"
      json: {amount: "{context.amount}"}
"""


@pytest.fixture
def handlers_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "authoring_handlers.py").write_text(textwrap.dedent(HANDLERS))
    config = tmp_path / "config"
    config.mkdir()
    for name, body in (("chain", DEFINITION), ("decline", FAILING), ("http", HTTP)):
        (config / f"{name}.yaml").write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))
    return config


async def test_upstream_results_reach_past_the_direct_parents(handlers_dir: Path) -> None:
    async with tasker_test_env(handlers_path=handlers_dir) as t:
        run = await t.run("authoring", "chain", {"order": 7})
    assert run.status == "complete"
    last = run.results["last"]
    assert last["parents"] == ["middle"]  # parent_results: direct parents only
    assert last["upstream"] == {"start": {"order": 7}, "middle": {"seen": ["start"]}}
    assert run.results["last_sync"] == {"upstream": ["middle", "start"]}


async def test_a_permanent_failure_on_attempt_one_is_explained_as_permanent(
    handlers_dir: Path,
) -> None:
    async with tasker_test_env(handlers_path=handlers_dir) as t:
        run = await t.run("authoring", "decline")
        analysis = (await t.services.tasks.dependencies(run.task.id)).analysis
    assert run.status == "error" and run.step("charge").attempts == 1
    reason = dict(analysis.blocked_steps)["charge"]
    assert reason.code == "failed_permanently"
    assert reason.message == "failed permanently: CARD_DECLINED: card declined"


async def test_http_steps_can_be_stubbed(handlers_dir: Path) -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, json={"charged": True, "path": request.url.path})

    async with tasker_test_env(handlers_path=handlers_dir) as t:
        sent = t.stub_http(respond)
        run = await t.run("authoring", "call_out", {"order": 9, "amount": 12.5})
    assert run.status == "complete"
    assert run.results["charge"] == {"charged": True, "path": "/charge/9"}
    assert [r.method for r in sent] == ["POST"]
    assert sent[0].read() == b'{"amount":12.5}'


async def test_step_failures_are_logged_at_warning(
    handlers_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="server.engine.runner"):
        async with tasker_test_env(handlers_path=handlers_dir) as t:
            run = await t.run("authoring", "decline")
    (record,) = [r for r in caplog.records if r.name == "server.engine.runner"]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert str(run.task.id) in message and "step charge" in message
    assert "attempt 1" in message and "CARD_DECLINED" in message
    assert record.error_class == "CARD_DECLINED" and record.attempt == 1  # type: ignore[attr-defined]


async def test_the_suites_own_database_still_writes_after_an_environment(
    handlers_dir: Path, database_url: str, registry: HandlerRegistry
) -> None:
    """The environment's SQLite and the suite's database share Tortoise's connection name:
    neither may be sent the other's statements (the process's first inserts are the
    environment's here, as in a suite that runs it first)."""
    EXECUTOR_CACHE.clear()
    async with tasker_test_env(handlers_path=handlers_dir) as t:
        run = await t.run("authoring", "chain", {"order": 7})
    assert run.status == "complete"
    services = build_services(fast_settings(database_url), NullDispatcher(), registry=registry)
    await services.open()
    try:
        task, _ = await services.tasks.create_task(
            CreateTask(namespace="shapes", name="diamond", context={})
        )
        seeded = Transition(
            task_id=task.id,
            to_status="pending",
            reason="seeded",
            metadata={},
            created_at=datetime.now(UTC),
        )
        await Transition.bulk_create([seeded, seeded])
        assert await Transition.filter(task_id=task.id, reason="seeded").count() == 2
    finally:
        await services.close()
