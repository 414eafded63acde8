"""The web console at /tasker/ui, driven in headless Chromium as a person would use it.

Screenshots of every step are kept in tests/artifacts/ (git-ignored) for people to look at.
"""

import json
from pathlib import Path

from server.client import TaskerClient
from tests.people.browser import Page
from tests.people.conftest import IN_BROWSER, Server

pytestmark = IN_BROWSER


# The step graph shows the latest statuses (drawing is asynchronous).
GRAPH_DRAWN = (
    "(g => g && g.dataset.drawn && g.dataset.drawn === g.dataset.source)"
    "(document.querySelector('#task-graph'))"
)


def ui(server: Server, fragment: str = "") -> str:
    return f"{server.url}/tasker/ui{fragment}"


def status_of(selector: str) -> str:
    return f"document.querySelector({json.dumps(selector)})?.dataset.status"


async def test_every_page_loads(page: Page, server: Server, artifacts: Path) -> None:
    await page.goto(ui(server))
    await page.wait_for("!!document.querySelector('[data-namespace=payments] .mini-graph svg')")
    assert "process_payment" in await page.text("[data-namespace=payments]")
    await page.screenshot(artifacts / "console-catalogue.png")

    await page.goto(ui(server, "#/handlers/payments/process_payment"))
    await page.wait_for("!!document.querySelector('#handler-graph svg')")
    graph = await page.text("#handler-graph")
    assert all(step in graph for step in ("validate_payment", "charge_card", "send_confirmation"))
    await page.screenshot(artifacts / "console-handler.png")

    await page.goto(ui(server, "#/tasks"))
    await page.wait_for("!!document.querySelector('#task-table, #no-tasks')")
    await page.screenshot(artifacts / "console-tasks.png")

    await page.goto(ui(server, "#/token"))
    await page.wait_for("!!document.querySelector('#token-input')")
    await page.screenshot(artifacts / "console-token.png")


async def test_create_a_task_and_watch_it_complete_without_reloading(
    page: Page, server: Server, artifacts: Path
) -> None:
    await page.goto(ui(server, "#/handlers/payments/process_payment"))
    await page.wait_for("!!document.querySelector('#create-form')")
    await page.eval("window.__sameDocument = true")
    context = {
        "payment_id": 77,
        "simulate_sleep": {"charge_card": 1.5},
        "simulate_failures": {"update_order": 1},
    }
    await page.fill("#create-context", json.dumps(context))
    await page.click("#create-submit")
    await page.wait_for("location.hash.startsWith('#/tasks/')")
    running = "#steps tr[data-step=charge_card]"
    assert await page.wait_for(f"{status_of(running)} === 'IN_PROGRESS'")
    await page.wait_for("document.querySelector('#task-graph svg')")
    await page.screenshot(artifacts / "console-task-running.png")
    await page.wait_for(f"{status_of('#task-header .badge')} === 'COMPLETE'", timeout=30)
    assert await page.eval("window.__sameDocument") is True  # live, not reloaded
    rows = await page.eval(
        "[...document.querySelectorAll('#steps tr[data-step]')].map(r => r.dataset.status)"
    )
    assert rows == ["COMPLETE"] * 4
    assert "2 / 2" in await page.text("#steps tr[data-step=update_order]")  # one retry shown
    assert "in_progress → complete" in await page.text("#event-log")
    await page.wait_for("document.querySelector('#live-state').textContent === 'finished'")
    await page.wait_for(GRAPH_DRAWN)
    assert "classDef" in await page.eval("document.querySelector('#task-graph').dataset.drawn")
    await page.screenshot(artifacts / "console-task-complete.png")


async def test_cancel_a_running_task(page: Page, server: Server, artifacts: Path) -> None:
    with TaskerClient(server.url) as client:
        task = client.create_task(
            "payments", "process_payment", {"payment_id": 5, "simulate_sleep": {"charge_card": 20}}
        )
    await page.goto(ui(server, f"#/tasks/{task['id']}"))
    await page.wait_for(f"{status_of('#steps tr[data-step=charge_card]')} === 'IN_PROGRESS'")
    await page.click("#cancel-task")
    await page.click("#confirm-cancel")
    await page.wait_for(f"{status_of('#task-header .badge')} === 'CANCELLED'")
    await page.wait_for(f"{status_of('#steps tr[data-step=send_confirmation]')} === 'CANCELLED'")
    await page.wait_for(GRAPH_DRAWN)
    await page.screenshot(artifacts / "console-task-cancelled.png")


async def test_retry_a_failed_task_and_resolve_a_step(
    page: Page, server: Server, gate: Path, artifacts: Path
) -> None:
    with TaskerClient(server.url) as client:
        task = client.create_task("people_tests", "gated", {"gate": str(gate)})
        other = client.create_task("people_tests", "gated", {"gate": str(gate) + ".never"})
    await page.goto(ui(server, f"#/tasks/{task['id']}"))
    await page.wait_for(f"{status_of('#task-header .badge')} === 'ERROR'")
    assert "closed" in await page.text("#steps tr[data-step=pass_gate]")
    await page.wait_for(GRAPH_DRAWN)
    await page.screenshot(artifacts / "console-task-error.png")
    gate.touch()  # the cause is fixed; now retry from the console
    await page.click("#retry-task")
    await page.wait_for(f"{status_of('#task-header .badge')} === 'COMPLETE'", timeout=30)
    await page.wait_for(GRAPH_DRAWN)
    await page.screenshot(artifacts / "console-task-retried.png")

    await page.goto(ui(server, f"#/tasks/{other['id']}"))
    await page.wait_for(f"{status_of('#task-header .badge')} === 'ERROR'")
    await page.click("#steps tr[data-step=pass_gate] button[data-action=resolve]")
    await page.fill("#steps tr[data-step=pass_gate] textarea", '{"opened": "by hand"}')
    await page.click("#steps tr[data-step=pass_gate] .resolve-form button[type=submit]")
    await page.wait_for(f"{status_of('#steps tr[data-step=pass_gate]')} === 'RESOLVED_MANUALLY'")
    await page.wait_for(f"{status_of('#task-header .badge')} === 'COMPLETE'", timeout=30)
    await page.wait_for(GRAPH_DRAWN)
    await page.screenshot(artifacts / "console-task-resolved.png")


async def test_task_list_filters_and_pages(page: Page, server: Server, gate: Path) -> None:
    with TaskerClient(server.url) as client:
        made = [
            client.create_task("people_tests", "gated", {"gate": f"{gate}{i}"}) for i in range(3)
        ]
        for task in made:
            client.wait_for_task(task["id"], timeout=30, poll=0.1)
        total = client.list_tasks(namespace="people_tests", status="error")["pagination"]
    await page.goto(ui(server, "#/tasks?namespace=people_tests&status=ERROR&first=2"))
    await page.wait_for("!!document.querySelector('#task-table')")
    first_page = await page.eval("document.querySelectorAll('#task-table tbody tr').length")
    assert first_page == 2
    assert f"{total['total_count']} tasks" in await page.text(".pager")
    assert made[-1]["id"][:8] in await page.text("#task-table")  # newest first
    await page.click("#next-page")
    await page.wait_for("location.hash.includes('after=')")
    await page.wait_for("document.querySelector('.pager')?.innerText.includes('page 2')")
    await page.click("#prev-page")
    await page.wait_for("document.querySelector('.pager')?.innerText.includes('page 1')")
    statuses = await page.eval(
        "[...document.querySelectorAll('#task-table .badge')].map(b => b.dataset.status)"
    )
    assert set(statuses) == {"ERROR"}


async def test_errors_are_shown_in_words(page: Page, server: Server, artifacts: Path) -> None:
    await page.goto(ui(server, "#/handlers/payments/process_payment"))
    await page.wait_for("!!document.querySelector('#create-form')")
    await page.fill("#create-context", '{"amount": 5}')
    await page.click("#create-submit")
    await page.wait_for("!!document.querySelector('#create-result .error-box')")
    message = await page.text("#create-result .error-box")
    assert message.startswith("The task was not created:") and "payment_id: is required" in message
    await page.screenshot(artifacts / "console-error-validation.png")

    await page.fill("#create-context", "{not json")
    await page.click("#create-submit")
    await page.wait_for(
        "document.querySelector('#create-result')?.innerText.includes('not valid JSON')"
    )

    await page.goto(ui(server, "#/tasks/00000000-0000-0000-0000-000000000000"))
    await page.wait_for("!!document.querySelector('.error-box')")
    assert "No task has the id" in await page.text(".error-box")
    await page.goto(ui(server, "#/handlers/payments/no_such_handler"))
    await page.wait_for("!!document.querySelector('.error-box')")
    assert "no_such_handler" in await page.text(".error-box")
    await page.goto(ui(server, "#/tasks/not-a-uuid"))
    await page.wait_for("!!document.querySelector('.error-box')")
    text = await page.text("main")
    assert text.strip() and "Traceback" not in text
    await page.screenshot(artifacts / "console-error-not-found.png")


async def test_a_refused_token_sends_the_user_to_the_token_field(
    page: Page, server: Server, artifacts: Path
) -> None:
    # The server here has authentication off, so the browser itself plays a server refusing
    # the token: every GraphQL request gets the seed's 401 envelope (test_auth.py does the
    # same against a server with TASKER_JWT_SECRET once authentication has landed).
    await page.goto(ui(server, "#/token"))
    await page.wait_for("!!document.querySelector('#token-input')")
    await page.eval("sessionStorage.setItem('tasker.token', 'expired.jwt.token')")
    envelope = {
        "error": {
            "type": "AuthenticationError",
            "code": "AUTHENTICATION_FAILED",
            "message": "Invalid or expired authentication token",
        }
    }
    await page.intercept("*/tasker/graphql*", 401, envelope)
    await page.goto(ui(server, "#/tasks"))
    await page.wait_for("!!document.querySelector('#token-expired')")
    assert (await page.eval("location.hash")).startswith("#/token?expired=1&back=")
    assert "Invalid or expired authentication token" in await page.text("#token-expired")
    assert await page.eval("sessionStorage.getItem('tasker.token')") is None
    await page.screenshot(artifacts / "console-token-refused.png")
    await page.send("Fetch.disable")
    await page.fill("#token-input", "a-new-token")  # accepted: this server has no auth
    await page.click("#token-save")
    await page.wait_for("!!document.querySelector('#task-table, #no-tasks')")
    assert await page.eval("location.hash") == "#/tasks"
    assert await page.eval("sessionStorage.getItem('tasker.token')") == "a-new-token"
    assert "Token: set" in await page.text("#token-state")


async def test_analytics_page_draws_charts(page: Page, server: Server, artifacts: Path) -> None:
    with TaskerClient(server.url) as client:
        done = client.create_task("payments", "process_payment", {"payment_id": 1})
        client.wait_for_task(done["id"], timeout=30, poll=0.1)
        fields = client.graphql('{ __type(name: "Query") { fields { name } } }')
    has_analytics = "analytics" in {f["name"] for f in fields["__type"]["fields"]}
    await page.goto(ui(server, "#/analytics"))
    await page.wait_for("!!document.querySelector('#analytics-charts, .error-box')")
    await page.screenshot(artifacts / "console-analytics.png")
    if not has_analytics:  # the API has no analytics yet: the page must say so in words
        assert "no analytics" in await page.text(".error-box")
        return
    await page.wait_for("!!document.querySelector('#analytics-charts svg[data-chart=gauge]')")
    charts = await page.eval("document.querySelectorAll('#analytics-charts svg').length")
    assert charts == 7
    score = await page.eval("document.querySelector('svg[data-chart=gauge]').ariaLabel")
    assert score.startswith("System health score: ")
    await page.goto(ui(server, "#/analytics?period=1&namespace=payments"))
    await page.wait_for(
        "document.querySelector('#analytics-charts h3')?.innerText === 'System health'"
    )
    assert await page.eval("document.querySelector('select[name=period]').value") == "1"
