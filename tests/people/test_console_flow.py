"""The console's flow control: a handler's limits and their current use, and the priority
field of the create form, driven in headless Chromium."""

import json
from pathlib import Path

from server.client import TaskerClient
from tests.people.browser import Page
from tests.people.conftest import IN_BROWSER, Server

pytestmark = IN_BROWSER


async def test_the_handler_page_shows_limits_and_creates_with_a_priority(
    page: Page, server: Server, artifacts: Path
) -> None:
    await page.goto(f"{server.url}/tasker/ui#/handlers/people_flow/serial_export")
    await page.wait_for("!!document.querySelector('#flow-control #limit-usage')")
    section = await page.text("#flow-control")
    assert "Priority 1" in section
    assert "at most 1 tasks in progress per context.warehouse (queue)" in section
    assert "100 starts / 1m per context.warehouse" in await page.text("table.data")
    assert await page.eval("document.querySelector('#create-priority').value") == "1"
    await page.fill("#create-context", json.dumps({"warehouse": "eu"}))
    await page.eval("document.querySelector('#create-priority').value = '3'")
    await page.click("#create-submit")
    await page.wait_for("location.hash.startsWith('#/tasks/')")
    task_id = await page.eval("location.hash.split('/')[2]")
    with TaskerClient(server.url) as client:
        assert client.get_task(task_id)["priority"] == 3
    await page.screenshot(artifacts / "console-flow-create.png")
    await page.goto(f"{server.url}/tasker/ui#/handlers/people_flow/serial_export")
    await page.wait_for("!!document.querySelector('#limit-usage tr[data-kind=rate]')")
    await page.screenshot(artifacts / "console-flow-limits.png")
