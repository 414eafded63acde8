"""The generated OpenAPI document, Swagger UI, and the route -> permission table."""

import re

from rest_compat.openapi import build_document
from rest_compat.routes import DOCUMENTED, OPERATIONS, PERMISSIONS

EXPECTED_PERMISSIONS = {
    ("GET", "/tasker/handlers"): "tasker.handler:index",
    ("GET", "/tasker/handlers/{namespace}"): "tasker.handler:index",
    ("GET", "/tasker/handlers/{namespace}/{name}"): "tasker.handler:show",
    ("POST", "/tasker/tasks"): "tasker.task:create",
    ("GET", "/tasker/tasks"): "tasker.task:index",
    ("GET", "/tasker/tasks/{id}"): "tasker.task:show",
    ("PATCH", "/tasker/tasks/{id}"): "tasker.task:update",
    ("DELETE", "/tasker/tasks/{id}"): "tasker.task:cancel",  # a :destroy grant implies it
    ("POST", "/tasker/tasks/{id}/retry"): "tasker.task:retry",
    ("GET", "/tasker/tasks/{id}/events"): "tasker.task:show",
    ("GET", "/tasker/tasks/{task_id}/task_diagrams"): "tasker.task_diagram:show",
    ("GET", "/tasker/tasks/{task_id}/workflow_steps"): "tasker.workflow_step:index",
    ("GET", "/tasker/tasks/{task_id}/workflow_steps/{step_id}"): "tasker.workflow_step:show",
    ("PATCH", "/tasker/tasks/{task_id}/workflow_steps/{step_id}"): "tasker.workflow_step:update",
    ("DELETE", "/tasker/tasks/{task_id}/workflow_steps/{step_id}"): "tasker.workflow_step:cancel",
    ("POST", "/tasker/tasks/{task_id}/workflow_steps/{step_id}/retry"): (
        "tasker.workflow_step:retry"
    ),
    ("POST", "/tasker/tasks/{task_id}/workflow_steps/{step_id}/resolve"): (
        "tasker.workflow_step:update"
    ),
}


async def document(client) -> dict:
    response = await client.get("/tasker/api-docs.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    return dict(response.json())


def test_every_operation_declares_its_permission():
    assert {op.method: op.permission for op in OPERATIONS}  # every entry has one
    assert {k: PERMISSIONS[k] for k in EXPECTED_PERMISSIONS} == EXPECTED_PERMISSIONS
    assert len(DOCUMENTED) == len(PERMISSIONS)  # one operation per method and path
    assert all(re.fullmatch(r"tasker\.\w+:\w+", p) for p in PERMISSIONS.values())


async def test_the_document_lists_every_operation_with_its_permission(client):
    doc = await document(client)
    assert doc["openapi"] == "3.1.0"
    served = {
        (method.upper(), path): op.get("x-permission")
        for path, item in doc["paths"].items()
        for method, op in item.items()
    }
    # The health probes are documented too, and need no permission at all.
    public = {("GET", "/tasker/health/live"): None, ("GET", "/tasker/health/ready"): None}
    assert served == {**PERMISSIONS, **public}
    assert EXPECTED_PERMISSIONS.items() <= served.items()


async def test_every_response_has_a_schema_and_every_error_the_envelope(client):
    doc = await document(client)
    for path, item in doc["paths"].items():
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            assert op["summary"] and op["operationId"], where
            for status, response in op["responses"].items():
                if status == "204":
                    continue
                assert response.get("content"), f"{where} {status}"
                if int(status) >= 400:
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorOut"}, where
            if "{" in path:
                assert "404" in op["responses"], where


async def test_request_schemas_come_from_the_validating_models(client):
    doc = await document(client)
    create = doc["paths"]["/tasker/tasks"]["post"]
    body = create["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/CreateTaskBody"}
    schema = doc["components"]["schemas"]["CreateTaskBody"]
    assert set(schema["required"]) == {"name", "namespace"}
    assert {"initiator", "source_system", "reason", "tags", "bypass_steps"} <= set(
        schema["properties"]
    )
    headers = [p["name"] for p in create["parameters"] if p["in"] == "header"]
    assert headers == ["Idempotency-Key"]
    listing = doc["paths"]["/tasker/tasks"]["get"]["parameters"]
    assert [p["name"] for p in listing] == [
        "namespace", "name", "version", "status", "page", "per_page",
    ]  # fmt: skip
    assert {p["in"] for p in listing} == {"query"}


async def test_step_shape_is_documented(client):
    doc = await document(client)
    step = doc["components"]["schemas"]["StepOut"]
    assert set(step["required"]) == set(step["properties"])
    assert "blocked_reason" in step["properties"]


def test_with_authentication_on_every_operation_requires_a_token():
    doc = build_document(OPERATIONS, auth_required=True)
    for item in doc["paths"].values():
        for op in item.values():
            assert op["security"] == [{"bearerAuth": []}]
            assert {"401", "403"} <= set(op["responses"])


async def test_swagger_ui_is_served_from_local_files(client):
    page = await client.get("/tasker/api-docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'url: "/tasker/api-docs.json"' in page.text
    assets = re.findall(r'(?:src|href)="(/tasker/static/swagger-ui/[^"]+)"', page.text)
    assert len(assets) == 4
    assert not re.search(r'(?:src|href)="https?://', page.text)  # nothing from the internet
    for asset in assets:
        assert (await client.get(asset)).status_code == 200, asset
