"""The console's schedules page in headless Chromium: a schedule made through the client is
listed with its next fire time, and Pause / Resume change it (the server says so)."""

import json
from pathlib import Path

from server.client import TaskerClient
from tests.people.browser import Page
from tests.people.conftest import IN_BROWSER, Server

pytestmark = IN_BROWSER


async def test_schedules_are_listed_and_paused_and_resumed(
    page: Page, server: Server, artifacts: Path
) -> None:
    with TaskerClient(server.url) as client:
        made = client.create_schedule("console_hourly", "payments", "process_payment", "0 * * * *",
                                      context={"payment_id": 1, "amount": 1, "currency": "EUR",
                                               "customer_id": 1})  # fmt: skip
    row = f"#schedules tr[data-schedule-id={json.dumps(made['id'])}]"
    await page.goto(f"{server.url}/tasker/ui#/schedules")
    await page.wait_for(f"!!document.querySelector({json.dumps(row)})")
    text = await page.text(row)
    assert "console_hourly" in text and "0 * * * *" in text and " (in " in text
    await page.screenshot(artifacts / "console-schedules.png")
    await page.click(f"{row} button[data-action=pause]")
    await page.wait_for(
        f"!!document.querySelector({json.dumps(row + ' button[data-action=resume]')})"
    )
    with TaskerClient(server.url) as client:
        assert client.get_schedule(made["id"])["paused"] is True
    await page.click(f"{row} button[data-action=resume]")
    await page.wait_for(
        f"!!document.querySelector({json.dumps(row + ' button[data-action=pause]')})"
    )
    with TaskerClient(server.url) as client:
        assert client.get_schedule(made["id"])["paused"] is False
