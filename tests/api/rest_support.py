"""Helpers for the REST tests: seed snapshots, shape comparison, creating and awaiting tasks."""

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")
STOPPED = {"complete", "error", "cancelled", "resolved_manually"}

# Free-form JSON whose inner keys depend on the handler, not on the API.
OPAQUE = frozenset({"context", "results", "inputs", "details"})
# Keys our bodies add beside the seed's, named one by one (a seed client ignores them).
ADDITIVE = frozenset(
    {
        "blocked_reasons",
        "run_at",
        "schedule_id",
        "scheduled_for",
        "paused",
        "priority",
        "concurrency",
        "rate_limit",
        "forked_from",
        "skipped",
        "parent_task_id",
        "parent_step",
        "items",
    }
)

PAYMENT = {"payment_id": 12345, "amount": 99.99, "currency": "USD", "customer_id": 67890}


def snapshot(name: str) -> Any:
    """A golden body: the seed's example, verbatim (`{...}` placeholders read as `{}`)."""
    return json.loads((SNAPSHOTS / f"{name}.json").read_text())


def assert_same_shape(actual: Any, golden: Any, path: str = "$") -> None:
    """Same keys at every level and the same JSON types; null matches any type either way.

    Lists compare every actual element with the golden's first one (seed lists are uniform).
    """
    if golden is None or actual is None:
        return
    if isinstance(golden, dict):
        assert isinstance(actual, dict), f"{path}: expected an object, got {actual!r}"
        assert set(actual) - ADDITIVE == set(golden), (
            f"{path}: keys differ: extra {set(actual) - set(golden)}, "
            f"missing {set(golden) - set(actual)}"
        )
        for key, value in golden.items():
            if key not in OPAQUE:
                assert_same_shape(actual[key], value, f"{path}.{key}")
        return
    if isinstance(golden, list):
        assert isinstance(actual, list), f"{path}: expected a list, got {actual!r}"
        if golden:
            for i, item in enumerate(actual):
                assert_same_shape(item, golden[0], f"{path}[{i}]")
        return
    assert _json_type(actual) == _json_type(golden), f"{path}: {actual!r} vs {golden!r}"


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def assert_timestamps(body: Any) -> None:
    """Every `*_at` value is ISO-8601 UTC with a Z (or null)."""
    if isinstance(body, dict):
        for key, value in body.items():
            if key.endswith("_at") and value is not None:
                assert ISO_Z.match(value), f"{key}={value!r}"
            assert_timestamps(value)
    elif isinstance(body, list):
        for item in body:
            assert_timestamps(item)


async def create_task(
    client: httpx.AsyncClient,
    context: dict[str, Any] | None = None,
    *,
    name: str = "process_payment",
    namespace: str = "payments",
    version: str | None = "2.1.0",
    **extra: Any,
) -> dict[str, Any]:
    """POST /tasker/tasks and return the created body (asserting 201)."""
    body: dict[str, Any] = {"name": name, "namespace": namespace, "context": context or PAYMENT}
    if version is not None:
        body["version"] = version
    body.update(extra)
    response = await client.post("/tasker/tasks", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def wait_until(
    client: httpx.AsyncClient, task_id: str, statuses: set[str] = STOPPED, timeout: float = 20
) -> dict[str, Any]:
    """Poll GET /tasker/tasks/{id} until its status is one of `statuses`."""
    deadline = time.monotonic() + timeout
    while True:
        body = (await client.get(f"/tasker/tasks/{task_id}")).json()
        if body["status"] in statuses:
            return dict(body)
        assert time.monotonic() < deadline, f"task {task_id} still {body['status']}"
        await asyncio.sleep(0.05)


async def wait_for_step(
    client: httpx.AsyncClient, task_id: str, step: str, status: str, timeout: float = 20
) -> dict[str, Any]:
    """Poll the step until it has `status`."""
    deadline = time.monotonic() + timeout
    while True:
        body = (await client.get(f"/tasker/tasks/{task_id}/workflow_steps/{step}")).json()
        if body["status"] == status:
            return dict(body)
        assert time.monotonic() < deadline, f"step {step} still {body['status']}"
        await asyncio.sleep(0.05)
