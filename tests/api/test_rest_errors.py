"""Every client mistake gets the seed's error envelope with the right status, never a 500."""

import httpx
import pytest

from tests.api.rest_support import PAYMENT, create_task

TASKS = "/tasker/tasks"
NO_TASK = "00000000-0000-0000-0000-000000000000"


def error_of(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert (
        {"type", "message", "code"} <= set(body["error"]) <= {"type", "message", "code", "details"}
    )
    return dict(body["error"])


# Raw bodies declare JSON, as every REST body must (else 415, tests/security/test_http_guard.py).
JSON = {"Content-Type": "application/json"}


class TestBodies:
    async def test_malformed_json_is_a_bad_request(self, client):
        error = error_of(await client.post(TASKS, content=b'{"name": ', headers=JSON), 400)
        assert (error["type"], error["code"]) == ("BadRequest", "BAD_REQUEST")

    @pytest.mark.parametrize("raw", [b"[]", b'"text"', b"42", b"null"])
    async def test_a_body_that_is_not_an_object_is_a_bad_request(self, client, raw):
        assert (
            error_of(await client.post(TASKS, content=raw, headers=JSON), 400)["type"]
            == "BadRequest"
        )

    async def test_declared_length_over_the_limit_is_refused_before_reading(self, client):
        big = b"{" + b" " * (1024 * 1024) + b"}"
        error = error_of(await client.post(TASKS, content=big, headers=JSON), 413)
        assert error["type"] == "PayloadTooLarge"

    async def test_streamed_body_over_the_limit_is_refused(self, client):
        async def chunks():
            yield b'{"context": {"pad": "'
            for _ in range(20):
                yield b"x" * 65536
            yield b'"}}'

        assert error_of(await client.post(TASKS, content=chunks(), headers=JSON), 413)["code"] == (
            "PAYLOAD_TOO_LARGE"
        )

    @pytest.mark.parametrize(
        ("body", "fields"),
        [
            ({"name": 1, "namespace": "payments"}, {"name"}),
            ({"name": "process_payment", "namespace": "payments", "context": []}, {"context"}),
            ({"name": "process_payment", "namespace": "payments", "tags": "a"}, {"tags"}),
            ({"name": "process_payment", "namespace": "payments", "tags": [1]}, {"tags[0]"}),
            ({"name": "process_payment", "namespace": "payments", "version": "v2"}, {"version"}),
            ({"name": "", "namespace": "payments"}, {"name"}),
            ({}, {"name", "namespace"}),
        ],
    )
    async def test_wrong_types_are_listed_by_field(self, client, body, fields):
        error = error_of(await client.post(TASKS, json=body), 422)
        assert error["type"] == "ValidationError"
        assert set(error["details"]) == fields

    async def test_nul_characters_are_refused_anywhere_in_the_body(self, client):
        body = {
            "name": "process_payment",
            "namespace": "payments",
            "context": {**PAYMENT, "note": {"deep": ["ok", "bad\x00"]}},
        }
        error = error_of(await client.post(TASKS, json=body), 422)
        assert error["details"] == {"context.note.deep[1]": ["must not contain NUL characters"]}

    async def test_wrong_types_on_task_update(self, client):
        task = await create_task(client)
        error = error_of(await client.patch(f"{TASKS}/{task['id']}", json={"tags": "x"}), 422)
        assert set(error["details"]) == {"tags"}


class TestParameters:
    @pytest.mark.parametrize(
        ("query", "field"),
        [
            ("page=0", "page"),
            ("page=abc", "page"),
            ("page=1.5", "page"),
            ("per_page=0", "per_page"),
            ("status=finished", "status"),
            ("namespace=a%00b", "namespace"),
        ],
    )
    async def test_bad_list_parameters(self, client, query, field):
        error = error_of(await client.get(f"{TASKS}?{query}"), 422)
        assert set(error["details"]) == {field}

    async def test_bad_boolean(self, client):
        task = await create_task(client)
        url = f"{TASKS}/{task['id']}?include_dependencies=maybe"
        assert set(error_of(await client.get(url), 422)["details"]) == {"include_dependencies"}

    async def test_invalid_semver_names_the_version(self, client):
        url = "/tasker/handlers/payments/process_payment?version=2.1"
        error = error_of(await client.get(url), 422)
        assert error["details"] == {"version": ["must be a valid semantic version"]}


class TestRouting:
    async def test_unknown_route_is_a_404_envelope(self, client):
        error = error_of(await client.get("/tasker/nothing/here"), 404)
        assert (error["type"], error["code"]) == ("NotFound", "NOT_FOUND")

    @pytest.mark.parametrize(
        ("method", "path", "allowed"),
        [
            ("PUT", TASKS, "GET, HEAD, POST"),
            ("POST", f"{TASKS}/{NO_TASK}", "GET, HEAD, PATCH, DELETE"),
            ("DELETE", "/tasker/handlers", "GET, HEAD"),
            ("GET", f"{TASKS}/{NO_TASK}/retry", "POST"),
        ],
    )
    async def test_wrong_method_is_a_405_envelope_listing_the_allowed(
        self, client, method, path, allowed
    ):
        response = await client.request(method, path)
        assert error_of(response, 405)["type"] == "MethodNotAllowed"
        assert response.headers["allow"] == allowed

    async def test_head_is_answered_like_get(self, client):
        response = await client.head("/tasker/handlers")
        assert response.status_code == 200

    @pytest.mark.parametrize(
        "path", [f"{TASKS}/{NO_TASK}", f"{TASKS}/not-a-uuid/workflow_steps", f"{TASKS}/1/events"]
    )
    async def test_unknown_task_ids_are_404(self, client, path):
        assert error_of(await client.get(path), 404)["type"] == "TaskNotFound"


class TestRequestIds:
    async def test_every_response_carries_a_request_id(self, client):
        response = await client.get("/tasker/handlers")
        assert len(response.headers["x-request-id"]) == 32

    async def test_a_sane_caller_id_is_kept_and_an_odd_one_replaced(self, client):
        kept = await client.get("/tasker/handlers", headers={"X-Request-ID": "abc-123"})
        assert kept.headers["x-request-id"] == "abc-123"
        odd = await client.get("/tasker/handlers", headers={"X-Request-ID": "a b<c>"})
        assert odd.headers["x-request-id"] != "a b<c>"


async def test_an_unexpected_failure_is_a_masked_500(app, monkeypatch):
    def explode(*_args: object) -> None:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(app.state.services.registry, "namespaces", explode)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/tasker/handlers")
    error = error_of(response, 500)
    assert (error["type"], error["code"]) == ("InternalError", "INTERNAL_ERROR")
    assert "secret" not in response.text
    assert len(error["details"]["request_id"]) == 32
