"""`server.testing`: what a handler author runs in their own pytest suite."""

import textwrap
import time
from pathlib import Path

import pytest

from server.domain.errors import ValidationFailed
from server.testing import tasker_test_env

HANDLER = """
from server.handlers import PermanentError, RetryableError, StepContext, StepHandler

class Fetch(StepHandler):
    def process(self, step: StepContext):
        if step.attempt <= step.context.get("flaky", 0):
            raise RetryableError("upstream busy", retry_after=30)
        return {"rows": step.context["rows"]}

class Total(StepHandler):
    async def process(self, step: StepContext):
        rows = step.parent_results["fetch"]["rows"]
        if not rows:
            raise PermanentError("nothing to add", code="EMPTY")
        return {"total": sum(rows), "scale": step.config["scale"]}
"""

DEFINITION = """
name: add_up
namespace_name: reports
version: 1.0.0
schema: {type: object, required: [rows]}
step_templates:
  - name: fetch
    handler_class: my_handlers:Fetch
    default_retry_limit: 3
  - name: total
    handler_class: my_handlers:Total
    depends_on_step: fetch
    handler_config: {scale: 2}
"""


@pytest.fixture
def handlers_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "my_handlers.py").write_text(textwrap.dedent(HANDLER))
    config = tmp_path / "config"
    config.mkdir()
    (config / "add_up.yaml").write_text(textwrap.dedent(DEFINITION))
    monkeypatch.syspath_prepend(str(tmp_path))
    return config


async def test_runs_a_users_handlers_to_completion(handlers_dir: Path) -> None:
    async with tasker_test_env(handlers_path=handlers_dir) as t:
        run = await t.run("reports", "add_up", {"rows": [1, 2, 3]})
    assert run.status == "complete"
    assert run.results == {"fetch": {"rows": [1, 2, 3]}, "total": {"total": 6, "scale": 2}}


async def test_retries_do_not_wait_with_fast_retries(handlers_dir: Path) -> None:
    started = time.monotonic()
    async with tasker_test_env(handlers_path=str(handlers_dir)) as t:
        run = await t.run("reports", "add_up", {"rows": [4], "flaky": 2})  # retry_after=30 s
    assert time.monotonic() - started < 10
    assert run.status == "complete" and run.step("fetch").attempts == 3
    assert run.step("fetch").last_error == "upstream busy"


async def test_permanent_failure_then_resolve_by_hand(handlers_dir: Path) -> None:
    async with tasker_test_env(handlers_path=handlers_dir) as t:
        run = await t.run("reports", "add_up", {"rows": []})
        assert run.status == "error"
        assert run.step("total").error_class == "EMPTY"
        await t.services.steps.resolve_step(run.task.id, "total", results={"total": 0})
        await t.drain()
        assert (await t.result(run.task.id)).status == "complete"


async def test_validation_errors_surface_before_anything_runs(handlers_dir: Path) -> None:
    async with tasker_test_env(handlers_path=handlers_dir) as t:
        with pytest.raises(ValidationFailed) as caught:
            await t.create("reports", "add_up", {})
    assert "rows" in str(caught.value.details)


async def test_examples_and_real_backoff(handlers_dir: Path) -> None:
    async with tasker_test_env(
        handlers_dir, examples=True, fast_retries=False, backoff_base_seconds=0.05
    ) as t:
        started = time.monotonic()
        run = await t.run(
            "payments",
            "process_payment",
            {"payment_id": 1, "simulate_failures": {"charge_card": 2}},
        )
        assert time.monotonic() - started >= 0.1  # 0.05 s + 0.1 s of backoff, really waited
        assert run.status == "complete" and run.step("charge_card").attempts == 3
        parallel = await t.run("inventory", "check_availability", {"items": [{"sku": "A"}]})
        assert parallel.status == "complete"
