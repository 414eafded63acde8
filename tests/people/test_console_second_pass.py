"""The console's second pass, in headless Chromium as people use it: a timeline, the whole event
history, a task list that keeps itself current, feedback on every command, readable charts,
small screens, create forms that start valid, and GraphiQL opening on Tasker's own operations.

Every page here runs with only loopback reachable (other host names resolve to nothing, and
IP literals go to a proxy that is not there) and records every request it makes: none may
leave loopback, and no JavaScript error or console error may occur. Screenshots are kept in
tests/artifacts/ (git-ignored).
"""

import asyncio
import base64
import gzip
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jsonschema
import pytest

from server.client import TaskerClient
from tests.people import browser
from tests.people.browser import Page
from tests.people.conftest import (
    IN_BROWSER,
    ROOT,
    Server,
    free_port,
    start_server,
    stop_server,
)

pytestmark = IN_BROWSER

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


class Guarded:
    """A page and the URLs it requested."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.requested: list[str] = []


@pytest.fixture
async def guarded(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Guarded]:
    monkeypatch.setattr(
        browser,
        "FLAGS",
        [
            *browser.FLAGS,
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            f"--proxy-server=http://127.0.0.1:{free_port()}",
        ],
    )
    async with browser.open_page() as page:
        watch = Guarded(page)

        async def note(params: dict[str, Any]) -> None:
            watch.requested.append(str(params["request"]["url"]))

        page.listeners["Network.requestWillBeSent"] = note
        await page.send("Network.enable")
        yield watch
        assert page.errors == [], f"JavaScript errors: {page.errors}"
        console_errors = [line for line in page.console if line.startswith("error")]
        assert console_errors == [], console_errors
    away = [
        u
        for u in watch.requested
        if not u.startswith(("data:", "blob:")) and urlsplit(u).hostname not in LOOPBACK
    ]
    assert watch.requested and away == [], away


def ui(server: Server, fragment: str = "") -> str:
    return f"{server.url}/tasker/ui{fragment}"


# The step graph shows the latest statuses (drawing is asynchronous).
GRAPH_DRAWN = (
    "(g => g && g.dataset.drawn && g.dataset.drawn === g.dataset.source)"
    "(document.querySelector('#task-graph'))"
)


def status_of(selector: str) -> str:
    return f"document.querySelector({json.dumps(selector)})?.dataset.status"


async def shot(page: Page, path: Path, width: int = 1280) -> None:
    metrics = await page.send("Page.getLayoutMetrics")
    height = min(metrics["cssContentSize"]["height"], 4000)
    clip = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
    data = await page.send(
        "Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(data["data"]))


def bars(step: str) -> str:
    return (
        "[...document.querySelectorAll("
        f"'#timeline .tl-row[data-step={step}] .tl-bar')].map(b => b.dataset.outcome)"
    )


# --- 1. timeline -----------------------------------------------------------------------------


async def test_timeline_draws_each_attempt_on_a_time_axis_live(
    guarded: Guarded, server: Server, artifacts: Path
) -> None:
    page = guarded.page
    with TaskerClient(server.url) as client:
        task = client.create_task(
            "payments",
            "process_payment",
            {
                "payment_id": 901,
                "simulate_sleep": {"charge_card": 3},
                "simulate_failures": {"update_order": 1},
            },
        )
    await page.goto(ui(server, f"#/tasks/{task['id']}"))
    # While charge_card runs its bar is there, marked running, and grows without a reload.
    await page.wait_for(f"{bars('charge_card')}.join() === 'IN_PROGRESS'")
    width = (
        "parseFloat(document.querySelector("
        "'#timeline [data-step=charge_card] .tl-bar').style.width)"
    )
    first = await page.eval(width)
    await page.screenshot(artifacts / "console2-timeline-running.png")
    await page.wait_for(f"{status_of('#task-header .badge')} === 'COMPLETE'", timeout=30)
    await page.wait_for(f"{bars('update_order')}.join() === 'ERROR,COMPLETE'")
    assert await page.eval(f"{bars('charge_card')}.join()") == "COMPLETE"
    assert first > 0
    # Tooltips give the exact duration and times; the axis is labelled in time units.
    title = await page.eval(
        "document.querySelector('#timeline [data-step=update_order] .tl-bar').title"
    )
    assert title.startswith("update_order, attempt 1: error, ") and "→" in title
    ticks = await page.eval(
        "[...document.querySelectorAll('#timeline .tl-tick')].map(t => t.textContent)"
    )
    assert ticks[0] == "0 ms" and any(t.endswith(" s") for t in ticks), ticks
    await page.screenshot(artifacts / "console2-timeline-complete.png")


async def test_a_delayed_task_shows_when_it_starts_and_why_its_steps_wait(
    guarded: Guarded, server: Server, artifacts: Path
) -> None:
    page = guarded.page
    with TaskerClient(server.url) as client:
        task = client.create_task(
            "payments", "process_payment", {"payment_id": 903}, delay_seconds=600
        )
    await page.goto(ui(server, f"#/tasks/{task['id']}"))
    await page.wait_for("document.querySelector('#task-run-at') !== null")
    assert await page.text("#task-run-at")
    # The root step's row gives the reason in words: scheduled, with the start time.
    await page.wait_for("document.body.innerText.includes('scheduled')")
    await page.screenshot(artifacts / "console2-delayed-start.png")


# --- 2. event history ------------------------------------------------------------------------


HISTORY = "[...document.querySelectorAll('#event-log li')]"


async def test_event_history_is_whole_numbered_timed_filterable_and_live(
    guarded: Guarded, server: Server, artifacts: Path
) -> None:
    page = guarded.page
    with TaskerClient(server.url) as client:
        done = client.create_task("payments", "process_payment", {"payment_id": 902})
        client.wait_for_task(done["id"], timeout=30, poll=0.1)
        stored = client.graphql(
            "query ($id: ID!) { task(id: $id) { transitions { cursor } } }", {"id": done["id"]}
        )["task"]["transitions"]
    # Opened after the task ended: all of its history is there, not only what arrives later.
    await page.goto(ui(server, f"#/tasks/{done['id']}"))
    await page.wait_for(f"{HISTORY}.length === {len(stored)}")
    numbers = await page.eval(f"{HISTORY}.map(li => li.dataset.n)")
    assert numbers == [str(n) for n in range(1, len(stored) + 1)]  # oldest first, newest last
    first = await page.eval(f"{HISTORY}[0].innerText")
    assert first.startswith("#1")
    stamps = await page.eval(f"{HISTORY}.map(li => li.querySelector('time').textContent)")
    assert all(len(s) == 23 and s[19] == "." for s in stamps), stamps  # ...HH:MM:SS.mmm
    assert await page.eval(
        f"{HISTORY}.every(li => / ago$|just now/.test(li.querySelector('.ev-ago').textContent))"
    )

    await page.eval(
        "(s => { s.value = 'charge_card'; s.dispatchEvent(new Event('change')); })"
        "(document.querySelector('#history-step'))"
    )
    steps = await page.eval(f"{HISTORY}.map(li => li.dataset.step)")
    assert steps and set(steps) == {"charge_card"}
    kept = await page.eval(f"{HISTORY}.map(li => Number(li.dataset.n))")
    assert kept != list(range(1, len(kept) + 1))  # the numbers are the task's, not the filter's
    await page.screenshot(artifacts / "console2-history-filtered.png")

    with TaskerClient(server.url) as client:
        running = client.create_task(
            "payments", "process_payment", {"payment_id": 903, "simulate_sleep": {"charge_card": 3}}
        )
    await page.goto(ui(server, f"#/tasks/{running['id']}"))
    # Taken while charge_card runs: what follows must arrive live.
    await page.wait_for(f"{status_of('#steps tr[data-step=charge_card]')} === 'IN_PROGRESS'")
    await page.wait_for(f"{HISTORY}.length > 0")
    before = await page.eval(f"{HISTORY}.length")
    await page.wait_for(f"{status_of('#task-header .badge')} === 'COMPLETE'", timeout=30)
    await page.wait_for(f"{HISTORY}.length > {before}")
    last = await page.eval(f"{HISTORY}.at(-1).innerText")
    assert "task" in last and "→ complete" in last  # the newest is last
    await page.screenshot(artifacts / "console2-history-live.png")


# --- 3. lists that live ----------------------------------------------------------------------


ROWS = "[...document.querySelectorAll('#task-table tbody tr')].map(r => r.dataset.taskId)"


async def test_task_list_refreshes_pauses_searches_and_counts_steps(
    guarded: Guarded, server: Server, gate: Path, artifacts: Path
) -> None:
    page = guarded.page
    await page.goto(ui(server, "#/tasks?namespace=people_tests"))
    await page.wait_for("!!document.querySelector('#task-table, #no-tasks')")
    await page.eval("window.__sameDocument = true")
    with TaskerClient(server.url) as client:
        fresh = client.create_task("people_tests", "gated", {"gate": f"{gate}.list"})
        client.wait_for_task(fresh["id"], timeout=30, poll=0.1)
    # It shows up by itself, with its steps counted by status and relative times.
    await page.wait_for(f"{ROWS}.includes({json.dumps(fresh['id'])})", timeout=15)
    row = f"document.querySelector('#task-table tr[data-task-id=\"{fresh['id']}\"]')"
    await page.wait_for(f"{row}.querySelector('[data-count-status=ERROR]')")
    counts = await page.eval(
        f"[...{row}.querySelectorAll('[data-count-status]')].map(b => b.textContent)"
    )
    assert "1 complete" in counts and "1 error" in counts, counts
    assert "ago" in await page.eval(f"{row}.innerText")
    await page.screenshot(artifacts / "console2-list-live.png")

    # Paused, it stays as it is; resumed, it catches up.
    await page.click("#list-pause")
    assert (
        await page.eval("document.querySelector('#list-pause').getAttribute('aria-pressed')")
        == "true"
    )
    with TaskerClient(server.url) as client:
        later = client.create_task("people_tests", "gated", {"gate": f"{gate}.later"})
    await asyncio.sleep(4)
    assert fresh["id"] in await page.eval(ROWS)
    assert later["id"] not in await page.eval(ROWS)
    await page.click("#list-pause")
    await page.wait_for(f"{ROWS}.includes({json.dumps(later['id'])})", timeout=15)
    assert await page.eval("window.__sameDocument") is True

    # Search by id prefix, kept in the URL; the back button returns to the filters before.
    await page.fill("#task-search", fresh["id"][:6])
    await page.eval("document.querySelector('#task-filters').requestSubmit()")
    await page.wait_for(f"location.hash.includes('q={fresh['id'][:6]}')")
    await page.wait_for(f"JSON.stringify({ROWS}) === JSON.stringify([{json.dumps(fresh['id'])}])")
    await page.screenshot(artifacts / "console2-list-search.png")
    await page.eval("history.back()")
    await page.wait_for("!location.hash.includes('q=')")
    await page.wait_for(
        "document.querySelector('select[name=namespace]')?.value === 'people_tests'"
    )
    await page.wait_for(f"{ROWS}.includes({json.dumps(later['id'])})")
    # A whole id goes straight to its task.
    await page.fill("#task-search", fresh["id"])
    await page.eval("document.querySelector('#task-filters').requestSubmit()")
    await page.wait_for(f"location.hash === '#/tasks/{fresh['id']}'")


# --- 4. feedback on actions ------------------------------------------------------------------


TOASTS = (
    "[...document.querySelectorAll('#toasts .toast')].map(t => t.dataset.kind + ' ' + t.innerText)"
)


async def test_a_retry_that_fails_again_says_so_and_errors_show_their_code(
    guarded: Guarded, server: Server, gate: Path, artifacts: Path
) -> None:
    page = guarded.page
    with TaskerClient(server.url) as client:
        task = client.create_task("people_tests", "gated", {"gate": str(gate)})
    await page.goto(ui(server, f"#/tasks/{task['id']}"))
    await page.wait_for(f"{status_of('#task-header .badge')} === 'ERROR'")
    await page.click("#retry-task")  # the gate is still closed: it fails again at once
    await page.wait_for(f"{TOASTS}.some(t => t.startsWith('ok Failed steps set to run again'))")
    await page.wait_for(
        f"{TOASTS}.some(t => t.startsWith('error pass_gate failed again'))", timeout=20
    )
    assert "closed" in " ".join(await page.eval(TOASTS))
    # The new attempt is in the history: pass_gate started and failed twice.
    await page.wait_for(
        f"{HISTORY}.filter(li => li.dataset.step === 'pass_gate'"
        " && li.dataset.to === 'ERROR').length === 2"
    )
    assert (
        await page.eval(
            f"{HISTORY}.filter(li => li.dataset.step === 'pass_gate'"
            " && li.dataset.to === 'IN_PROGRESS').length"
        )
        == 2
    )
    await page.screenshot(artifacts / "console2-retry-failed-again.png")

    # The task is cancelled elsewhere, and a page that has not caught up yet (played here by
    # enabling its button again) asks for a retry: the refusal is shown with its code.
    with TaskerClient(server.url) as client:
        client.cancel_task(task["id"])
    await page.eval("document.querySelector('#retry-task').disabled = false")
    await page.click("#retry-task")
    await page.wait_for(
        f"{TOASTS}.some(t => t.startsWith('error Could not retry the failed steps: '))"
    )
    failure = next(t for t in await page.eval(TOASTS) if "Could not" in t)
    code = failure.split("steps: ", 1)[1].split(":", 1)[0]
    assert code.isupper() and "_" in code, failure  # e.g. INVALID_TRANSITION: ...
    await page.screenshot(artifacts / "console2-action-error.png")


# --- 5. readable analytics -------------------------------------------------------------------


async def test_analytics_are_readable_with_units_tooltips_and_hourly_outcomes(
    guarded: Guarded, server: Server, gate: Path, artifacts: Path
) -> None:
    page = guarded.page
    with TaskerClient(server.url) as client:
        ok = client.create_task("payments", "process_payment", {"payment_id": 904})
        bad = client.create_task("people_tests", "gated", {"gate": f"{gate}.chart"})
        client.wait_for_task(ok["id"], timeout=30, poll=0.1)
        client.wait_for_task(bad["id"], timeout=30, poll=0.1)
    await page.goto(ui(server, "#/analytics?period=24"))
    await page.wait_for("!!document.querySelector('#analytics-charts svg[data-chart=gauge]')")
    await page.wait_for("!!document.querySelector('#hourly-panel svg[data-chart=hourly]')")
    smallest = await page.eval(
        """Math.min(...[...document.querySelectorAll('main svg text')].map(t => {
             const svg = t.ownerSVGElement;
             const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
             return parseFloat(getComputedStyle(t).fontSize) * scale; }))"""
    )
    assert smallest >= 12, smallest
    units = await page.eval(
        "[...document.querySelectorAll('main svg text.unit')].map(t => t.textContent)"
    )
    assert "ms" in units and any("per hour" in u for u in units), units
    untitled = await page.eval(
        "[...document.querySelectorAll('main svg rect')]"
        ".filter(r => !r.querySelector('title')).length"
    )
    assert untitled == 0
    done = await page.eval(
        "[...document.querySelectorAll('#hourly-panel rect[data-kind=completed]')]"
        ".reduce((n, r) => n + Number(r.dataset.value), 0)"
    )
    failed = await page.eval(
        "[...document.querySelectorAll('#hourly-panel rect[data-kind=failed]')]"
        ".reduce((n, r) => n + Number(r.dataset.value), 0)"
    )
    assert done >= 1 and failed >= 1
    bars_per_hour = "document.querySelectorAll('#hourly-panel rect[data-kind]').length"
    assert await page.eval(bars_per_hour) == 48  # completed and failed for each of 24 hours
    await shot(page, artifacts / "console2-analytics.png")


# --- 6. small screens ------------------------------------------------------------------------


async def test_no_page_overflows_a_390_px_screen(
    guarded: Guarded, server: Server, artifacts: Path
) -> None:
    page = guarded.page
    await page.send(
        "Emulation.setDeviceMetricsOverride",
        width=390,
        height=844,
        deviceScaleFactor=1,
        mobile=True,
    )
    with TaskerClient(server.url) as client:
        task = client.create_task("payments", "process_payment", {"payment_id": 905})
        client.wait_for_task(task["id"], timeout=30, poll=0.1)
    pages = {
        "catalogue": ("", "[data-namespace=payments] .mini-graph svg"),
        "handler": ("#/handlers/inventory/process_order", "#create-form"),
        "tasks": ("#/tasks", "#task-table"),
        "task": (f"#/tasks/{task['id']}", "#timeline .tl-bar"),
        "analytics": ("#/analytics", "#analytics-charts svg"),
        "token": ("#/token", "#token-input"),
    }
    for name, (fragment, ready) in pages.items():
        await page.goto(ui(server, fragment))
        await page.wait_for(f"!!document.querySelector({json.dumps(ready)})")
        await page.eval("new Promise(r => setTimeout(r, 300))")
        wide = await page.eval("document.documentElement.scrollWidth")
        # On failure, name the elements whose removal ends the overflow.
        culprits = wide > 390 and await page.eval(
            "[...document.querySelectorAll('main *')].filter(e => {"
            " const old = e.style.display; e.style.display = 'none';"
            " const w = document.documentElement.scrollWidth; e.style.display = old;"
            " return w <= 390; })"
            ".slice(0, 8).map(e => `${e.tagName}.${e.className}#${e.id}`)"
        )
        assert wide <= 390, f"{name} is {wide} px wide: {culprits}"
        token = await page.eval(
            "(r => [r.left, r.right, r.height])"
            "(document.querySelector('#token-state').getBoundingClientRect())"
        )
        assert token[0] >= 0 and token[1] <= 390 and token[2] >= 24, (name, token)
        await shot(page, artifacts / f"console2-390-{name}.png", width=390)
    await page.click("#token-state")
    await page.wait_for("location.hash === '#/token'")


# --- 7. correct defaults ---------------------------------------------------------------------


async def test_create_forms_offer_only_contexts_their_schema_accepts(
    guarded: Guarded, server: Server, artifacts: Path
) -> None:
    page = guarded.page
    with TaskerClient(server.url) as client:
        catalogue = client.graphql("{ namespaces { name handlers { name contextSchema } } }")[
            "namespaces"
        ]
    checked = 0
    for ns in catalogue:
        for handler in ns["handlers"]:
            await page.goto(ui(server, f"#/handlers/{ns['name']}/{handler['name']}"))
            await page.wait_for("!!document.querySelector('#create-context')")
            text = await page.eval("document.querySelector('#create-context').value")
            schema = handler["contextSchema"]
            if text.strip():
                jsonschema.validate(json.loads(text), schema or {})
            else:  # left empty: then the schema is shown beside the field
                assert schema and await page.eval(
                    "!!document.querySelector('#create-form #context-schema pre')"
                ), handler["name"]
            checked += 1
    assert checked >= 10

    await page.goto(ui(server, "#/handlers/inventory/process_order"))
    await page.wait_for("!!document.querySelector('#create-context')")
    offered = json.loads(await page.eval("document.querySelector('#create-context').value"))
    assert offered["items"] != []
    await shot(page, artifacts / "console2-create-defaults.png")
    await page.click("#create-submit")  # the example as offered is accepted
    await page.wait_for("location.hash.startsWith('#/tasks/')")


# --- 8. GraphiQL -----------------------------------------------------------------------------


async def test_graphiql_opens_on_a_tasker_example(
    guarded: Guarded, server: Server, artifacts: Path
) -> None:
    page = guarded.page
    await page.goto(f"{server.url}/tasker/graphql")
    await page.wait_for(
        "document.querySelector('.graphiql-query-editor')?.innerText.includes('taskEvents')",
        timeout=30,
    )
    editor = await page.eval("document.querySelector('.graphiql-query-editor').innerText")
    assert "Welcome to GraphiQL" not in editor
    assert "task(id: $id)" in editor and "steps" in editor and "subscription TaskEvents" in editor
    await page.wait_for(
        "[...document.querySelectorAll('.graphiql-editor-tool .graphiql-editor')]"
        ".some(e => e.innerText.includes('\"id\"'))"
    )
    await shot(page, artifacts / "console2-graphiql.png")


# --- size and speed --------------------------------------------------------------------------


async def test_first_load_is_under_300_kb_compressed(guarded: Guarded, server: Server) -> None:
    page = guarded.page
    await page.goto(ui(server))
    await page.wait_for("!!document.querySelector('[data-namespace=payments] .mini-graph svg')")
    await page.eval("new Promise(r => setTimeout(r, 500))")
    urls = sorted({u for u in guarded.requested if "/tasker/ui" in u and "graphql" not in u})
    total = 0
    for url in urls:
        body = httpx.get(url).content
        total += len(gzip.compress(body, 6))
    print(f"\nconsole first load: {len(urls)} files, {total / 1024:.1f} KB gzipped")
    assert len(urls) >= 5 and total < 300 * 1024, (total, urls)


def wide_handler(folder: Path, lanes: int = 10, depth: int = 20) -> None:
    """A handler with lanes x depth steps: `lanes` chains of `depth` steps each."""
    lines = [
        "name: wide",
        "namespace_name: people_wide",
        "version: 1.0.0",
        "description: Many small steps, to time the task page",
        "step_templates:",
    ]
    for lane in range(lanes):
        for d in range(depth):
            lines.append(f"  - name: s{lane:02d}_{d:02d}")
            lines.append("    handler_class: tests.people.gate:Prepare")
            if d:
                lines.append(f"    depends_on_step: s{lane:02d}_{d - 1:02d}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "wide.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def wide_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("tasker-wide")
    wide_handler(workdir / "handlers")
    process, running = start_server(workdir, TASKER_HANDLERS_PATH=str(workdir / "handlers"))
    try:
        yield running
    finally:
        stop_server(process)


async def test_a_task_of_200_steps_renders_without_a_long_frame(
    guarded: Guarded, wide_server: Server, artifacts: Path
) -> None:
    page = guarded.page
    with TaskerClient(wide_server.url) as client:
        task = client.create_task("people_wide", "wide", {})
        client.wait_for_task(task["id"], timeout=120, poll=0.2)
    # Long tasks (over 50 ms of main thread work) are recorded from the page's first moment.
    await page.send(
        "Page.addScriptToEvaluateOnNewDocument",
        source="window.__long = []; new PerformanceObserver(l => window.__long.push("
        "...l.getEntries().map(e => e.duration))).observe({type: 'longtask', buffered: true});",
    )
    await page.goto(ui(wide_server, f"#/tasks/{task['id']}"))
    await page.wait_for("document.querySelectorAll('#steps tr[data-step]').length === 200", 30)
    await page.wait_for("document.querySelectorAll('#timeline .tl-bar').length === 200", 30)
    await page.wait_for(GRAPH_DRAWN, 60)
    await page.eval("new Promise(r => setTimeout(r, 1000))")
    longest = await page.eval("Math.max(0, ...window.__long)")
    shown = await page.eval("performance.now()")
    print(
        f"\n200-step task page: longest main-thread task {longest:.0f} ms (page at {shown:.0f} ms)"
    )
    await shot(page, artifacts / "console2-200-steps.png")
    assert longest < 100, longest
    # The whole history is there: the newest on the page, the earlier ones a click away.
    assert "of 6" in await page.text("#history-count")
    await page.click("#history-earlier")
    await page.wait_for("document.querySelectorAll('#event-log li').length > 600")
    assert await page.eval("document.querySelector('#event-log li').dataset.n") == "1"


# --- accessibility ---------------------------------------------------------------------------


AXE = """new Promise((resolve, reject) => {
  const run = () => axe.run(document, { resultTypes: ['violations'] }).then(r => resolve(
    r.violations.filter(v => ['serious', 'critical'].includes(v.impact)).map(v =>
      `${v.impact} ${v.id}: ${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | ')}`
    )), reject);
  if (window.axe) return run();
  const s = document.createElement('script');
  s.src = '/tasker/static/vendor/axe.min.js';
  s.onload = run;
  s.onerror = () => reject(new Error('axe.min.js did not load'));
  document.head.append(s);
})"""


@pytest.mark.skipif(
    not (ROOT / "server" / "static" / "vendor" / "axe.min.js").exists(),
    reason="vendored browser assets not fetched (python -m server.assets)",
)
async def test_every_page_passes_axe_without_serious_violations(
    guarded: Guarded, server: Server, artifacts: Path
) -> None:
    page = guarded.page
    with TaskerClient(server.url) as client:
        task = client.create_task("payments", "process_payment", {"payment_id": 906})
        client.wait_for_task(task["id"], timeout=30, poll=0.1)
    pages = {
        "catalogue": ("", "[data-namespace=payments] .mini-graph svg"),
        "handler": ("#/handlers/payments/process_payment", "#handler-graph svg"),
        "tasks": ("#/tasks", "#task-table"),
        "task": (f"#/tasks/{task['id']}", "#timeline .tl-bar"),
        "analytics": ("#/analytics", "#analytics-charts svg"),
        "token": ("#/token", "#token-input"),
    }
    found = {}
    for name, (fragment, ready) in pages.items():
        await page.goto(ui(server, fragment))
        await page.wait_for(f"!!document.querySelector({json.dumps(ready)})")
        await page.eval("new Promise(r => setTimeout(r, 300))")
        if violations := await page.eval(AXE):
            found[name] = violations
    assert found == {}, json.dumps(found, indent=1)
