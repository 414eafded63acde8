"""Task diagrams over REST for a running, a completed and a failed task, as JSON and HTML."""

import re

from server.assets import asset_url
from server.services.diagrams import STATUS_FILL
from tests.api.rest_support import PAYMENT, create_task, wait_for_step, wait_until

COMPLETE, IN_PROGRESS = "fill:#90EE90", "fill:#FFE4B5"


async def diagram(client, task_id: str) -> dict:
    response = await client.get(f"/tasker/tasks/{task_id}/task_diagrams")
    assert response.status_code == 200
    return response.json()


def styles(body: dict) -> dict[str, str]:
    return {node["id"]: node["style"] for node in body["nodes"]}


async def test_running_task(client):
    context = {**PAYMENT, "simulate_sleep": {"charge_card": 1}}
    task = await create_task(client, context)
    await wait_for_step(client, task["id"], "charge_card", "in_progress")
    body = await diagram(client, task["id"])
    pending = f"fill:{STATUS_FILL['pending']}"
    assert styles(body) == {
        "validate_payment": COMPLETE,
        "charge_card": IN_PROGRESS,
        "update_order": pending,
        "send_confirmation": pending,
    }
    nodes = {n["id"]: n for n in body["nodes"]}
    assert nodes["charge_card"]["label"] == "Charge Card"
    assert nodes["charge_card"]["attributes"] == {"status": "in_progress", "duration_ms": None}
    assert isinstance(nodes["validate_payment"]["attributes"]["duration_ms"], int)
    assert body["attributes"] == {"task_id": task["id"], "status": "in_progress"}
    await client.delete(f"/tasker/tasks/{task['id']}")


async def test_completed_task(client):
    task = await create_task(client)
    await wait_until(client, task["id"])
    body = await diagram(client, task["id"])
    assert set(styles(body).values()) == {COMPLETE}
    assert [(e["source_id"], e["target_id"]) for e in body["edges"]] == [
        ("validate_payment", "charge_card"),
        ("charge_card", "update_order"),
        ("update_order", "send_confirmation"),
    ]
    assert body["attributes"]["status"] == "complete"
    assert body["title"] == "payments.process_payment@2.1.0"


async def test_failed_task(client):
    task = await create_task(client, {**PAYMENT, "simulate_permanent_failure": "charge_card"})
    await wait_until(client, task["id"])
    body = await diagram(client, task["id"])
    assert styles(body)["charge_card"] == f"fill:{STATUS_FILL['error']}"
    assert body["attributes"]["status"] == "error"


async def test_every_status_has_its_own_colour():
    assert len(set(STATUS_FILL.values())) == len(STATUS_FILL) == 6


async def test_fan_in_edges_come_from_every_parent(client):
    task = await create_task(client, {}, name="diamond", namespace="shapes", version="1.0.0")
    body = await diagram(client, task["id"])
    merge_parents = sorted(e["source_id"] for e in body["edges"] if e["target_id"] == "merge")
    assert merge_parents == ["left", "right"]


async def test_html_page_draws_the_graph_with_mermaid(client):
    task = await create_task(client)
    await wait_until(client, task["id"])
    response = await client.get(f"/tasker/tasks/{task['id']}/task_diagrams?format=html")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert f'<script src="{asset_url("mermaid.min.js")}"></script>' in page
    source = re.search(r'<pre class="mermaid">\n(.*?)</pre>', page, re.S)
    assert source is not None
    assert "flowchart TD" in source.group(1)
    assert source.group(1).count("--&gt;") == 3  # the arrows, HTML-escaped inside <pre>
    assert "Validate Payment" in source.group(1)
    assert "style step1 fill:#90EE90" in source.group(1)


async def test_unknown_format_is_refused(client):
    task = await create_task(client)
    response = await client.get(f"/tasker/tasks/{task['id']}/task_diagrams?format=svg")
    assert response.status_code == 422
    assert "format" in response.json()["error"]["details"]
