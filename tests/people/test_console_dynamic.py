"""The console on a dynamic workflow: a map step's item progress, and the links between a
parent task and the child task its `task:` step started."""

import time
from pathlib import Path

from server.client import TaskerClient
from tests.people.browser import Page
from tests.people.conftest import IN_BROWSER, Server

pytestmark = IN_BROWSER


async def test_item_progress_and_parent_child_links(
    page: Page, server: Server, artifacts: Path
) -> None:
    with TaskerClient(server.url) as client:
        task = client.create_task("people_dynamic", "fan_out", {"numbers": [1, 2, 3, 4, 5, 6]})
        deadline = time.monotonic() + 30
        while client.get_task(task["id"])["status"] != "complete":
            assert time.monotonic() < deadline, client.list_steps(task["id"])
            time.sleep(0.1)
    await page.goto(f"{server.url}/tasker/ui#/tasks/{task['id']}")
    await page.wait_for("!!document.querySelector('#task-children a')")
    assert "items 6/6" in await page.text("#steps tr[data-step=each]")
    assert "people_dynamic.leaf" in await page.text("#task-children")
    await page.screenshot(artifacts / "console-dynamic-parent.png")
    await page.click("#task-children a")
    await page.wait_for("!!document.querySelector('#task-parent a')")
    assert task["id"] in await page.text("#task-parent")
    assert "(step child)" in await page.text("#task-parent")
