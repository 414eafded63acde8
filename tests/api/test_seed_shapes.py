"""Seed details of the REST surface: the health probes in the document, the dependency
analysis's step lists, security in the document following the configuration, empty bodies."""

from typing import Any

import httpx
import pytest

from server.app import create_app
from tests.api.rest_support import PAYMENT, create_task, wait_until
from tests.conftest import fast_settings

FAILING_CHARGE = {**PAYMENT, "simulate_permanent_failure": "charge_card"}
SECRET = "seed-shapes-test-secret-long-enough-for-hs256"
PROBES = ("/tasker/health/live", "/tasker/health/ready")
WAIVABLE = ("/tasker/metrics", "/tasker/analytics/performance", "/tasker/analytics/bottlenecks")


def envelope(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert {"type", "message", "code"} <= set(body["error"])
    return dict(body["error"])


async def served_document(app: Any) -> dict[str, Any]:
    """The document an app serves (no lifespan needed: it reads only the configuration)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        response = await c.get("/tasker/api-docs.json")
        assert response.status_code == 200
        return dict(response.json())


# --- the health probes the seed documents -------------------------------------------------


async def test_the_document_lists_the_liveness_and_readiness_probes(client):
    doc = (await client.get("/tasker/api-docs.json")).json()
    for path in PROBES:
        op = doc["paths"][path]["get"]
        assert op["tags"] == ["health"]
        assert op["security"] == []  # they never need a token
        assert "x-permission" not in op
        schema = op["responses"]["200"]["content"]["application/json"]["schema"]
        assert schema["$ref"].startswith("#/components/schemas/")
    ready = doc["paths"]["/tasker/health/ready"]["get"]["responses"]
    assert ready["503"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorOut"
    }
    # What they answer is what the document says.
    assert (await client.get(PROBES[0])).json() == {"status": "alive"}
    ready_body = (await client.get(PROBES[1])).json()
    assert ready_body["status"] == "ready"
    assert all(c["status"] == "ok" for c in ready_body["checks"].values())


async def test_with_authentication_on_the_probes_still_need_no_token():
    app = create_app(fast_settings("sqlite://:memory:", jwt_secret=SECRET))
    doc = await served_document(app)
    for path in PROBES:
        op = doc["paths"][path]["get"]
        assert op["security"] == []
        assert not {"401", "403"} & set(op["responses"])
    assert doc["paths"]["/tasker/tasks"]["get"]["security"] == [{"bearerAuth": []}]


# --- metrics and analytics: the document follows TASKER_METRICS_REQUIRES_AUTH --------------


@pytest.mark.parametrize("requires_auth", [False, True])
async def test_metrics_and_analytics_security_follows_the_configuration(requires_auth):
    settings = fast_settings(
        "sqlite://:memory:", jwt_secret=SECRET, metrics_requires_auth=requires_auth
    )
    app = create_app(settings)
    doc = await served_document(app)
    for path in WAIVABLE:
        op = doc["paths"][path]["get"]
        if requires_auth:
            assert op["security"] == [{"bearerAuth": []}], path
            assert {"401", "403"} <= set(op["responses"]), path
        else:
            assert op["security"] == [], path
            assert not {"401", "403"} & set(op["responses"]), path
    if requires_auth:  # and the server agrees: no token, refused before any work
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            for path in WAIVABLE:
                envelope(await c.get(path), 401)


async def test_health_status_security_follows_its_own_setting():
    app = create_app(
        fast_settings("sqlite://:memory:", jwt_secret=SECRET, health_status_requires_auth=False)
    )
    doc = await served_document(app)
    assert doc["paths"]["/tasker/health/status"]["get"]["security"] == []
    assert doc["paths"]["/tasker/metrics"]["get"]["security"] == []  # the default: waived


# --- the dependency analysis: names in all three lists -------------------------------------


async def test_blocked_steps_are_names_like_ready_and_completed_steps(client):
    task = await create_task(client, context=FAILING_CHARGE)
    await wait_until(client, task["id"])
    body = (await client.get(f"/tasker/tasks/{task['id']}?include_dependencies=true")).json()
    deps = body["dependencies"]
    blocked = ["charge_card", "update_order", "send_confirmation"]
    assert deps["blocked_steps"] == blocked
    assert deps["completed_steps"] == ["validate_payment"]
    assert deps["ready_steps"] == []
    assert all(isinstance(name, str) for key in ("blocked_steps", "ready_steps",
               "completed_steps") for name in deps[key])  # fmt: skip
    # The reasons stay available: by name beside the lists, and on each step.
    reasons = deps["blocked_reasons"]
    assert list(reasons) == blocked
    assert reasons["charge_card"]["code"] == "failed_permanently"
    assert reasons["update_order"]["code"] == "upstream_failed"
    steps = (await client.get(f"/tasker/tasks/{task['id']}/workflow_steps")).json()
    by_name = {s["name"]: s["blocked_reason"] for s in steps["workflow_steps"]}
    assert {name: by_name[name] for name in blocked} == reasons


async def test_the_document_describes_the_dependency_lists_alike(client):
    doc = (await client.get("/tasker/api-docs.json")).json()
    props = doc["components"]["schemas"]["Dependencies"]["properties"]
    for key in ("blocked_steps", "ready_steps", "completed_steps"):
        assert props[key]["type"] == "array"
        assert props[key]["items"] == {"type": "string"}, key


# --- a body-taking request with no body ----------------------------------------------------


async def test_a_patch_with_no_body_is_a_validation_error(client):
    task = await create_task(client)
    await wait_until(client, task["id"])
    step = f"/tasker/tasks/{task['id']}/workflow_steps/charge_card"
    for url in (f"/tasker/tasks/{task['id']}", step):
        # A body of only whitespace must say it is JSON (else it is refused earlier, 415).
        typed = {"Content-Type": "application/json"}
        for sent in ({}, {"content": b""}, {"content": b"  \n", "headers": typed}):
            error = envelope(await client.patch(url, **sent), 422)
            assert error["type"] == "ValidationError"
            assert error["code"] == "VALIDATION_ERROR"
            assert error["details"] == {"body": ["must be present: a JSON object"]}
    # An empty object is a body: it changes nothing and answers the record.
    assert (await client.patch(step, json={})).status_code == 200


async def test_the_document_says_which_bodies_are_required(client):
    doc = (await client.get("/tasker/api-docs.json")).json()
    bodies = {
        f"{method.upper()} {path}": op["requestBody"]["required"]
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if "requestBody" in op
    }
    step = "/tasker/tasks/{task_id}/workflow_steps/{step_id}"
    assert bodies == {
        "POST /tasker/tasks": True,
        "PATCH /tasker/tasks/{id}": True,
        f"PATCH {step}": True,
        f"POST {step}/resolve": False,  # resolving needs nothing; no body reads as {}
        "POST /tasker/schedules": True,
        "PATCH /tasker/schedules/{id}": True,
        "POST /tasker/tasks/{id}/signals/{name}": False,  # a bare POST: an empty payload
        "POST /tasker/tasks/batch": True,
        "POST /tasker/tasks/{id}/rerun": True,
        "POST /tasker/tasks/bulk/cancel": True,
        "POST /tasker/tasks/bulk/retry": True,
        "POST /tasker/tasks/bulk/rerun": True,
    }
