"""The console's pause and resume: buttons on a task's page and a handler's page, a paused
badge on both. Driven in headless Chromium (skipped without it); the GraphQL documents the
pages send are checked against the schema everywhere."""

import re
from pathlib import Path

import pytest
from graphql import build_schema, parse, validate

from graphql_schema.schema import sdl
from server.client import TaskerClient
from tests.people.browser import Page
from tests.people.conftest import NEEDS_CHROMIUM, Server

STATIC = Path(__file__).resolve().parents[2] / "server" / "console" / "static" / "js" / "views"
DOCUMENT = re.compile(r"const (\w+) = `([^`]*)`;", re.S)


def documents(file: str) -> dict[str, str]:
    text = (STATIC / file).read_text(encoding="utf-8")
    found: dict[str, str] = dict(DOCUMENT.findall(text))
    result = found.get("TASK_RESULT", "")
    for name, body in re.findall(r"(\w+): `(mutation[^`]*)`", text):
        found[name] = body.replace("${TASK_RESULT}", result)
    return found


def test_the_pause_documents_of_the_console_are_valid() -> None:
    task_page, handler_page = documents("task.js"), documents("catalogue.js")
    sent = [task_page["TASK"], task_page["pauseTask"], task_page["resumeTask"]]
    sent += [handler_page["HANDLER"], handler_page["PAUSE"], handler_page["RESUME"]]
    served = build_schema(sdl())
    for document in sent:
        assert validate(served, parse(document)) == [], document
    assert " paused" in task_page["TASK"] and " paused" in handler_page["HANDLER"]


@pytest.mark.browser
@NEEDS_CHROMIUM
async def test_pause_and_resume_a_task_and_a_handler_from_the_console(
    page: Page, server: Server, artifacts: Path
) -> None:
    with TaskerClient(server.url) as client:
        task = client.create_task(
            "payments", "process_payment", {"payment_id": 9, "simulate_sleep": {"charge_card": 3}}
        )
    await page.goto(f"{server.url}/tasker/ui#/tasks/{task['id']}")
    await page.click("#pause-task")
    await page.wait_for("!!document.querySelector('#paused-badge')")
    await page.screenshot(artifacts / "console-task-paused.png")
    await page.click("#resume-task")
    await page.wait_for("!document.querySelector('#paused-badge')")

    await page.goto(f"{server.url}/tasker/ui#/handlers/payments/process_payment")
    await page.click("#pause-handler")
    await page.wait_for("!!document.querySelector('#handler-paused-badge')")
    await page.screenshot(artifacts / "console-handler-paused.png")
    await page.click("#resume-handler")
    await page.wait_for("!document.querySelector('#handler-paused-badge')")
