"""One rule set for every surface: what REST refuses, GraphQL refuses the same way.

Each bad input goes through REST and through GraphQL (and task creation also through the
Python client, which the CLI uses): every one is a 4xx / typed GraphQL error with the same
code and the same per-field details, never a 500 or INTERNAL_ERROR, and nothing is stored.
The rules themselves live in `server.domain.inputs`.
"""

import json
from typing import Any

import pytest

from server.client.aio import AsyncTaskerClient
from server.client.errors import ValidationError as ClientValidationError
from server.domain.errors import InvalidTaskConfig
from server.domain.inputs import MAX_JSON_BYTES, MAX_JSON_DEPTH
from server.domain.views import CreateTask
from tests.api.rest_support import PAYMENT

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)

CREATE = """mutation($input: CreateTaskInput!) { createTask(input: $input) { __typename
  ... on Task { id context } ... on Error { code message }
  ... on ValidationError { details { field messages } } } }"""
UPDATE_TASK = """mutation($id: ID!, $input: UpdateTaskInput!) { updateTask(id: $id, input: $input)
  { __typename ... on Error { code message } ... on ValidationError { details { field messages } }
  } }"""
UPDATE_STEP = """mutation($id: ID!, $step: String!, $input: UpdateStepInput!) {
  updateStep(taskId: $id, step: $step, input: $input) { __typename
  ... on Error { code message } ... on ValidationError { details { field messages } } } }"""
RESOLVE_STEP = """mutation($id: ID!, $step: String!, $results: JSON, $reason: String) {
  resolveStep(taskId: $id, step: $step, results: $results, reason: $reason) { __typename
  ... on Error { code message } ... on ValidationError { details { field messages } } } }"""
TASKS = """query($namespace: String, $name: String, $version: String) {
  tasks(namespace: $namespace, name: $name, version: $version) { totalCount } }"""
BOTTLENECKS = """query($namespace: String, $name: String, $version: String) {
  analytics { bottlenecks(namespace: $namespace, name: $name, version: $version) {
  analysisPeriod } } }"""


class Raw:
    """A JSON number Python's encoder cannot write (`1e400`): spliced into the body as is."""

    def __init__(self, text: str) -> None:
        self.text = text


def encode(value: Any) -> bytes:
    """JSON as a careless client sends it: NaN and Infinity as bare words, raw numbers kept."""
    raws: dict[str, str] = {}

    def mark(item: Any) -> Any:
        if isinstance(item, Raw):
            raws[f'"@raw{len(raws)}@"'] = item.text
            return f"@raw{len(raws) - 1}@"
        if isinstance(item, dict):
            return {k: mark(v) for k, v in item.items()}
        if isinstance(item, list):
            return [mark(v) for v in item]
        return item

    text = json.dumps(mark(value))
    for marker, raw in raws.items():
        text = text.replace(marker, raw)
    return text.encode()


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def details_of(graphql: dict[str, Any]) -> dict[str, list[str]]:
    return {d["field"]: d["messages"] for d in graphql.get("details", [])}


async def rest_create(client, fields: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    body = {k: v for k, v in fields.items() if k != "idempotency_key"}
    headers = {"Content-Type": "application/json"}
    if "idempotency_key" in fields:
        headers["Idempotency-Key"] = fields["idempotency_key"]
    response = await client.post("/tasker/tasks", content=encode(body), headers=headers)
    return response.status_code, response.json()


async def graphql(client, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(
        "/tasker/graphql",
        content=encode({"query": query, "variables": variables}),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    return response.json()


async def graphql_create(client, fields: dict[str, Any]) -> dict[str, Any]:
    body = await graphql(client, CREATE, {"input": {camel(k): v for k, v in fields.items()}})
    assert "errors" not in body, body
    return body["data"]["createTask"]


def task(**changes: Any) -> dict[str, Any]:
    return {"namespace": "payments", "name": "process_payment", "context": PAYMENT, **changes}


def context(**extra: Any) -> dict[str, Any]:
    return task(context={**PAYMENT, **extra})


# (fields of a create request, the field the problem is reported on)
BAD_CREATES = [
    pytest.param(context(big=2**64), "context.big", id="integer over 2^64"),
    pytest.param(context(big=INT64_MAX + 1), "context.big", id="integer over int64"),
    pytest.param(context(big=INT64_MIN - 1), "context.big", id="integer under int64"),
    pytest.param(context(deep=[1, {"n": 10**30}]), "context.deep[1].n", id="nested huge integer"),
    pytest.param(context(x=Raw("NaN")), "context.x", id="NaN"),
    pytest.param(context(x=Raw("Infinity")), "context.x", id="Infinity"),
    pytest.param(context(x=Raw("-Infinity")), "context.x", id="-Infinity"),
    pytest.param(context(x=Raw("1e400")), "context.x", id="1e400"),
    pytest.param(context(note="a\x00b"), "context.note", id="NUL in a context string"),
    pytest.param(context(**{"k\x00": 1}), "context", id="NUL in a context key"),
    pytest.param(context(deep=nested(MAX_JSON_DEPTH)), "context", id="context too deep"),
    pytest.param(task(reason="why\x00"), "reason", id="NUL in reason"),
    pytest.param(task(tags=["ok", "t\x00"]), "tags[1]", id="NUL in a tag"),
    pytest.param(task(initiator="\x00"), "initiator", id="NUL in initiator"),
    pytest.param(task(source_system="s\x00"), "source_system", id="NUL in source_system"),
    pytest.param(task(initiator="i" * 256), "initiator", id="initiator over 255"),
    pytest.param(task(source_system="s" * 256), "source_system", id="source_system over 255"),
    pytest.param(task(idempotency_key="k" * 256), "idempotency_key", id="key over 255"),
    pytest.param(task(tags=["t" * 256]), "tags[0]", id="tag over 255"),
    pytest.param(task(namespace="pay\x00ments"), "namespace", id="NUL in namespace"),
]


@pytest.mark.parametrize(("fields", "field"), BAD_CREATES)
async def test_a_bad_create_is_refused_alike_on_rest_and_graphql(client, fields, field):
    status, rest = await rest_create(client, fields)
    assert status == 422, rest
    error = rest["error"]
    assert (error["type"], error["code"]) == ("ValidationError", "INVALID_TASK_CONFIG")
    assert error["message"] == "Invalid task configuration"
    assert field in error["details"], error

    result = await graphql_create(client, fields)
    assert result["__typename"] == "ValidationError", result
    assert (result["code"], result["message"]) == (error["code"], error["message"])
    assert details_of(result) == error["details"]

    assert (await client.get("/tasker/tasks")).json()["pagination"]["total_count"] == 0


async def test_the_python_client_gets_the_same_refusal(client):
    """The client (and the CLI, which uses it) goes through REST and gets a typed error."""
    async with AsyncTaskerClient("http://testserver", http=client) as tasker:
        with pytest.raises(ClientValidationError) as caught:
            await tasker.create_task(
                "payments", "process_payment", {**PAYMENT, "big": 2**64}, initiator="\x00"
            )
    assert caught.value.code == "INVALID_TASK_CONFIG"
    assert set(caught.value.details) == {"context.big", "initiator"}


@pytest.mark.parametrize(
    "value",
    [
        INT64_MAX,
        INT64_MIN,
        0.1,
        1.7976931348623157e308,
        -5e-324,
        "é ☃ 𝄞",
        nested(MAX_JSON_DEPTH - 1),
    ],
    ids=["int64 max", "int64 min", "0.1", "largest double", "smallest double", "unicode", "deep"],
)
async def test_values_within_the_rules_round_trip_exactly(client, value):
    status, created = await rest_create(client, context(x=value))
    assert status == 201, created
    rest = (await client.get(f"/tasker/tasks/{created['id']}")).json()
    assert rest["context"]["x"] == value
    result = await graphql_create(client, context(x=value))
    assert result["__typename"] == "Task" and result["context"]["x"] == value


async def test_an_oversized_context_is_refused_by_the_core(services):
    """REST's body limit (413) comes first there; the core bounds what any surface stores."""
    blob = "x" * MAX_JSON_BYTES
    with pytest.raises(InvalidTaskConfig) as caught:
        await services.tasks.create_task(
            CreateTask(namespace="payments", name="process_payment", context={"blob": blob})
        )
    assert list(caught.value.details or {}) == ["context"]


FILTERS = [
    pytest.param({"namespace": "pay\x00"}, id="namespace"),
    pytest.param({"name": "\x00"}, id="name"),
    pytest.param({"version": "1.0.0\x00"}, id="version"),
]


@pytest.mark.parametrize("flt", FILTERS)
async def test_a_nul_in_a_task_list_filter_is_refused_alike(client, flt):
    rest = await client.get("/tasker/tasks", params=flt)
    assert rest.status_code == 422, rest.text
    error = rest.json()["error"]
    assert error["code"] == "VALIDATION_ERROR" and list(error["details"]) == list(flt)

    body = await graphql(client, TASKS, flt)
    (problem,) = body["errors"]
    assert problem["extensions"]["code"] == error["code"]
    assert problem["extensions"]["details"] == error["details"]


@pytest.mark.parametrize("flt", FILTERS)
async def test_a_nul_in_a_bottleneck_filter_is_refused_alike(client, flt):
    rest = await client.get("/tasker/analytics/bottlenecks", params=flt)
    assert rest.status_code == 422, rest.text
    error = rest.json()["error"]
    assert error["code"] == "VALIDATION_ERROR" and list(error["details"]) == list(flt)

    body = await graphql(client, BOTTLENECKS, flt)
    (problem,) = body["errors"]
    assert problem["extensions"]["code"] == error["code"]
    assert problem["extensions"]["details"] == error["details"]


async def created_task(client) -> str:
    status, body = await rest_create(client, task())
    assert status == 201, body
    return str(body["id"])


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"reason": "r\x00"}, "reason", id="NUL in reason"),
        pytest.param({"tags": ["\x00"]}, "tags[0]", id="NUL in a tag"),
        pytest.param({"tags": ["t" * 256]}, "tags[0]", id="tag over 255"),
    ],
)
async def test_a_bad_task_update_is_refused_alike(client, changes, field):
    task_id = await created_task(client)
    rest = await client.patch(
        f"/tasker/tasks/{task_id}",
        content=encode(changes),
        headers={"Content-Type": "application/json"},
    )
    assert rest.status_code == 422, rest.text
    error = rest.json()["error"]
    assert error["code"] == "VALIDATION_ERROR" and field in error["details"]

    result = (await graphql(client, UPDATE_TASK, {"id": task_id, "input": changes}))["data"]
    assert result["updateTask"]["__typename"] == "ValidationError"
    assert result["updateTask"]["code"] == error["code"]
    assert details_of(result["updateTask"]) == error["details"]


@pytest.mark.parametrize(
    ("inputs", "field"),
    [
        pytest.param({"n": 2**64}, "inputs.n", id="integer over 2^64"),
        pytest.param({"n": Raw("NaN")}, "inputs.n", id="NaN"),
        pytest.param({"s": "\x00"}, "inputs.s", id="NUL"),
    ],
)
async def test_bad_step_inputs_are_refused_alike(client, inputs, field):
    task_id = await created_task(client)
    url = f"/tasker/tasks/{task_id}/workflow_steps/charge_card"
    rest = await client.patch(
        url, content=encode({"inputs": inputs}), headers={"Content-Type": "application/json"}
    )
    assert rest.status_code == 422, rest.text
    error = rest.json()["error"]
    assert error["code"] == "VALIDATION_ERROR" and field in error["details"]

    variables = {"id": task_id, "step": "charge_card", "input": {"inputs": inputs}}
    result = (await graphql(client, UPDATE_STEP, variables))["data"]["updateStep"]
    assert result["__typename"] == "ValidationError"
    assert result["code"] == error["code"] and details_of(result) == error["details"]


@pytest.mark.parametrize(
    ("given", "field"),
    [
        pytest.param({"results": {"n": INT64_MIN - 1}}, "results.n", id="integer under int64"),
        pytest.param({"results": {"n": Raw("1e400")}}, "results.n", id="1e400"),
        pytest.param({"results": ["\x00"]}, "results[0]", id="NUL in results"),
        pytest.param({"reason": "\x00"}, "reason", id="NUL in reason"),
    ],
)
async def test_a_bad_step_resolution_is_refused_alike(client, given, field):
    task_id = await created_task(client)
    url = f"/tasker/tasks/{task_id}/workflow_steps/send_confirmation/resolve"
    rest = await client.post(
        url, content=encode(given), headers={"Content-Type": "application/json"}
    )
    assert rest.status_code == 422, rest.text
    error = rest.json()["error"]
    assert error["code"] == "VALIDATION_ERROR" and field in error["details"]

    variables = {"id": task_id, "step": "send_confirmation", **given}
    result = (await graphql(client, RESOLVE_STEP, variables))["data"]["resolveStep"]
    assert result["__typename"] == "ValidationError"
    assert result["code"] == error["code"] and details_of(result) == error["details"]


async def test_a_lone_surrogate_is_refused_on_both_surfaces(client):
    """No UTF-8 form, so no database can store it. REST's JSON parser refuses it first (400);
    GraphQL's parser takes it, and the core refuses it (it was an INTERNAL_ERROR)."""
    raw = b'{"namespace": "payments", "name": "process_payment", "reason": "\\ud800",'
    raw += b' "context": {"payment_id": 1}}'
    rest = await client.post(
        "/tasker/tasks", content=raw, headers={"Content-Type": "application/json"}
    )
    assert rest.status_code == 400 and rest.json()["error"]["code"] == "BAD_REQUEST"
    result = await graphql_create(client, task(reason="\ud800", context={"x": ["\udfff"]}))
    assert (result["__typename"], result["code"]) == ("ValidationError", "INVALID_TASK_CONFIG")
    assert set(details_of(result)) == {"reason", "context.x[0]"}


async def test_a_nul_in_an_address_is_not_found_on_both_surfaces(client):
    assert (await client.get("/tasker/tasks/%00")).status_code == 404
    assert (await client.get("/tasker/handlers/pay%00ments")).status_code == 404
    task_id = await created_task(client)
    assert (await client.get(f"/tasker/tasks/{task_id}/workflow_steps/%00")).status_code == 404
    body = await graphql(client, 'query { task(id: "\\u0000") { id } }', {})
    assert body == {"data": {"task": None}}


async def test_a_document_full_of_mistakes_gets_a_bounded_answer(services):
    with pytest.raises(InvalidTaskConfig) as caught:
        await services.tasks.create_task(
            CreateTask(
                namespace="payments", name="process_payment", context={"n": [2**64] * 10_000}
            )
        )
    assert 0 < len(caught.value.details or {}) <= 10
