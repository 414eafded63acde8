"""The console's fork control: pick a step, optionally give the new task another context, and
the console opens the fork; a context that is not a JSON object is refused before any call."""

import time
from pathlib import Path

from server.client import TaskerClient
from tests.people.browser import Page
from tests.people.conftest import IN_BROWSER, Server

pytestmark = IN_BROWSER


def finished(client: TaskerClient, context: dict[str, object]) -> str:
    task = client.create_task("people_dynamic", "fan_out", context)
    deadline = time.monotonic() + 30
    while client.get_task(task["id"])["status"] != "complete":
        assert time.monotonic() < deadline, client.list_steps(task["id"])
        time.sleep(0.1)
    return str(task["id"])


async def test_rerun_from_a_step_with_a_new_context(
    page: Page, server: Server, artifacts: Path
) -> None:
    with TaskerClient(server.url) as client:
        original = finished(client, {"numbers": [1, 2]})
        kept = {s["name"]: s for s in client.list_steps(original)}["each"]["results"]
    await page.goto(f"{server.url}/tasker/ui#/tasks/{original}")
    await page.wait_for("!!document.querySelector('#rerun-task:not([disabled])')")
    shown = await page.eval("document.querySelector('#rerun-context').value")
    assert '"numbers"' in shown  # starts as the task's own context
    await page.eval("document.querySelector('#rerun-step').value = 'child'")
    await page.fill("#rerun-context", "[1, 2]")
    await page.click("#rerun-task")
    await page.wait_for("document.querySelector('.toast.error')?.innerText.includes('object')")
    assert original in await page.eval("window.location.hash")  # no fork was made
    await page.fill("#rerun-context", '{"numbers": [1, 2], "note": "forked by hand"}')
    await page.eval("document.querySelector('details.rerun-context').open = true")
    await page.screenshot(artifacts / "console-fork-context.png")
    await page.click("#rerun-task")
    await page.wait_for(f"!window.location.hash.includes('{original}')")
    fork_id = str(await page.eval("window.location.hash")).rsplit("/", 1)[-1]
    await page.wait_for("!!document.querySelector('#task-forked-from a')")
    assert original in await page.text("#task-forked-from")
    with TaskerClient(server.url) as client:
        fork = client.get_task(fork_id)
        assert fork["forked_from"] == original
        assert fork["context"] == {"numbers": [1, 2], "note": "forked by hand"}
        deadline = time.monotonic() + 30
        while client.get_task(fork_id)["status"] != "complete":
            assert time.monotonic() < deadline, client.list_steps(fork_id)
            time.sleep(0.1)
        steps = {s["name"]: s for s in client.list_steps(fork_id)}
    assert steps["each"]["results"] == kept  # kept, not re-run: the original's results
