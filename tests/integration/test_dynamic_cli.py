"""`tasker task rerun` and `tasker tasks retry|cancel` against the app in process; the CLI's
synchronous client is bridged to the test's loop (`tests.support.bridge`)."""

import asyncio
import json

import httpx
import pytest
from click.testing import CliRunner, Result

from server.cli import main
from server.container import Services
from server.domain.states import TaskState
from server.domain.views import CreateTask
from server.registry.handler_registry import HandlerRegistry
from tests.conftest import DYNAMIC, WORKFLOWS
from tests.support.bridge import cli_talks_to
from tests.support.waiting import wait_for_task


@pytest.fixture(scope="module")
def registry() -> HandlerRegistry:
    return HandlerRegistry.load([WORKFLOWS, DYNAMIC], examples=True)


async def test_cli_rerun_and_bulk(
    engine: Services, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:

    cli_talks_to(client, monkeypatch)

    def run(*args: str, stdin: str | None = None) -> Result:
        return CliRunner().invoke(main, [*args, "--url", "http://testserver"], input=stdin)

    failed = []
    for _ in range(3):
        view, _ = await engine.tasks.create_task(CreateTask("dynamic", "chain", {"fail": "c"}))
        failed.append(str((await wait_for_task(engine, view.id)).id))

    forked = await asyncio.to_thread(
        run, "task", "rerun", failed[0], "--from", "c", "--context", "{}", "--json"
    )
    assert forked.exit_code == 0, forked.output
    fork = json.loads(forked.stdout)
    assert fork["forked_from"] == failed[0]
    assert (await wait_for_task(engine, fork["id"])).status is TaskState.COMPLETE

    refused = await asyncio.to_thread(run, "tasks", "retry", "--status", "error", stdin="n\n")
    assert refused.exit_code == 1 and "Aborted" in refused.output
    retried = await asyncio.to_thread(
        run, "tasks", "retry", "--status", "error", "--namespace", "dynamic", "--batch", "2",
        "--yes", "--json",
    )  # fmt: skip
    assert retried.exit_code == 0, retried.output
    assert sorted(json.loads(retried.stdout)["ids"]) == sorted(failed)
    nothing = await asyncio.to_thread(run, "tasks", "cancel", "--name", "none", "--yes")
    assert nothing.exit_code == 0 and "no task matches" in nothing.output
