"""Every example body of seed/REST_API.md, reproduced by the server (snapshots/seed_*.json).

Discovery answers are compared value for value (the bundled examples are the seed's
catalogue); task bodies carry ids and times of their own, so they are compared by shape: the
same keys at every level and the same JSON types.
"""

from tests.api.rest_support import (
    ADDITIVE,
    assert_same_shape,
    assert_timestamps,
    create_task,
    snapshot,
    wait_until,
)


async def test_list_namespaces_is_the_seed_example(client):
    response = await client.get("/tasker/handlers")
    assert response.status_code == 200
    golden = snapshot("seed_namespaces")
    # The test registry adds a fourth namespace of workflow shapes after the seed's three.
    assert response.json()["namespaces"][:3] == golden["namespaces"]


async def test_namespace_handlers_include_the_seed_examples(client):
    response = await client.get("/tasker/handlers/payments")
    assert response.status_code == 200
    body, golden = response.json(), snapshot("seed_namespace_handlers")
    assert body["namespace"] == golden["namespace"]
    # The seed lists two of the five payments handlers.
    # `paused` is additive (a seed client ignores it).
    seen = [{k: v for k, v in h.items() if k != "paused"} for h in body["handlers"][:2]]
    assert seen == golden["handlers"]
    assert_same_shape(body, golden)


async def test_handler_detail_is_the_seed_example(client):
    response = await client.get("/tasker/handlers/payments/process_payment?version=2.1.0")
    assert response.status_code == 200
    body, golden = response.json(), snapshot("seed_handler_detail")
    assert_same_shape(body, golden)
    # handler_class names our Python classes where the seed names Ruby ones.
    for step in body["step_templates"] + golden["step_templates"]:
        step.pop("handler_class")
    assert body.pop("paused") is False  # additive: a seed client ignores it
    # Flow-control keys are additive (a seed client ignores them).
    for part in [body, *body["step_templates"]]:
        for key in ADDITIVE:
            part.pop(key, None)
    assert body == golden


async def test_create_task_answers_the_seed_body(client):
    request = snapshot("seed_create_task_request")
    response = await client.post("/tasker/tasks", json=request)
    assert response.status_code == 201
    body = response.json()
    assert_same_shape(body, snapshot("seed_create_task_response"))
    assert_timestamps(body)
    assert body["full_name"] == "payments.process_payment@2.1.0"
    assert body["context"] == request["context"]
    assert body["status"] == "pending"


async def test_list_tasks_answers_the_seed_body(client):
    for _ in range(3):
        await create_task(client)
    response = await client.get("/tasker/tasks?namespace=payments&version=2.1.0&page=1&per_page=10")
    assert response.status_code == 200
    body = response.json()
    assert_same_shape(body, snapshot("seed_task_list"))
    assert body["pagination"] == {
        "current_page": 1,
        "per_page": 10,
        "total_pages": 1,
        "total_count": 3,
    }


async def test_task_with_dependencies_answers_the_seed_body(client):
    task = await create_task(client)
    await wait_until(client, task["id"])
    response = await client.get(f"/tasker/tasks/{task['id']}?include_dependencies=true")
    assert response.status_code == 200
    body = response.json()
    assert_same_shape(body, snapshot("seed_task_with_dependencies"))
    assert_timestamps(body)
    assert [s["name"] for s in body["steps"]] == [
        "validate_payment",
        "charge_card",
        "update_order",
        "send_confirmation",
    ]
    assert body["dependencies"]["completed_steps"] == [s["name"] for s in body["steps"]]


async def test_task_diagram_answers_the_seed_body(client):
    task = await create_task(client)
    await wait_until(client, task["id"])
    response = await client.get(f"/tasker/tasks/{task['id']}/task_diagrams?format=json")
    assert response.status_code == 200
    body, golden = response.json(), snapshot("seed_task_diagram")
    assert_same_shape(body, golden)
    node = body["nodes"][0]
    assert {k: node[k] for k in ("id", "label", "shape", "style")} == {
        k: golden["nodes"][0][k] for k in ("id", "label", "shape", "style")
    }
    assert node["url"] == f"/tasker/tasks/{task['id']}/workflow_steps/validate_payment"
    assert body["edges"][0] == golden["edges"][0]
    assert body["direction"] == "TD"
    assert body["title"] == golden["title"]
    assert body["attributes"] == {"task_id": task["id"], "status": "complete"}


async def test_update_step_accepts_the_seed_request(client):
    task = await create_task(client)
    await wait_until(client, task["id"])
    response = await client.patch(
        f"/tasker/tasks/{task['id']}/workflow_steps/validate_payment",
        json=snapshot("seed_update_step_request"),
    )
    assert response.status_code == 200
    assert response.json()["retry_limit"] == 5
    assert response.json()["inputs"] == {"timeout": 30, "custom_param": "value"}


async def test_validation_error_has_the_seed_envelope(client):
    response = await client.post(
        "/tasker/tasks", json={"name": "process_payment", "version": "2.1", "context": {}}
    )
    assert response.status_code == 422
    assert response.json() == snapshot("seed_error_validation")


async def test_handler_not_found_is_the_seed_error(client):
    response = await client.get("/tasker/handlers/payments/unknown_handler?version=1.0.0")
    assert response.status_code == 404
    assert response.json() == snapshot("seed_error_handler_not_found")


async def test_namespace_not_found_is_the_seed_error(client):
    response = await client.get("/tasker/handlers/unknown_namespace")
    assert response.status_code == 404
    assert response.json() == snapshot("seed_error_namespace_not_found")


async def test_complete_handler_discovery_workflow(client):
    """The seed's cURL "Complete Handler Discovery Workflow", step by step."""
    # 1. List all namespaces
    namespaces = (await client.get("/tasker/handlers")).json()["namespaces"]
    assert "payments" in [n["name"] for n in namespaces]
    # 2. Explore handlers in payments namespace
    handlers = (await client.get("/tasker/handlers/payments")).json()["handlers"]
    assert "process_payment" in [h["id"] for h in handlers]
    # 3. Get detailed handler information with dependency graph
    detail = await client.get("/tasker/handlers/payments/process_payment?version=2.1.0")
    assert detail.json()["dependency_graph"]["execution_order"][0] == "validate_payment"
    # 4. Create a task using discovered handler
    created = await client.post(
        "/tasker/tasks",
        headers={"Content-Type": "application/json"},
        content=b'{"name": "process_payment", "namespace": "payments", "version": "2.1.0", '
        b'"context": {"payment_id": 123}}',
    )
    assert created.status_code == 201
    task_id = created.json()["id"]
    # 5. Monitor task progress
    await wait_until(client, task_id)
    progress = await client.get(f"/tasker/tasks/{task_id}?include_dependencies=true")
    assert progress.status_code == 200
    assert progress.json()["status"] == "complete"
    assert progress.json()["dependencies"]["analysis"] == "All steps are complete"
