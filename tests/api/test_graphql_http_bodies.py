"""POST bodies that are not a GraphQL request, and subscriptions sent over HTTP: a 400 with a
GraphQL-shaped error naming the problem, never a 500 or a logged traceback."""

import logging

import pytest

URL = "/tasker/graphql"
JSON = {"content-type": "application/json"}
NOT_AN_OBJECT = 'Expected a JSON object, such as {"query": "{ __typename }", "variables": {}}.'
DEEP = "[" * 3_000 + "]" * 3_000


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"null", NOT_AN_OBJECT),
        (b'"str"', NOT_AN_OBJECT),
        (b"5", NOT_AN_OBJECT),
        (b"true", NOT_AN_OBJECT),
        (b"[]", NOT_AN_OBJECT),
        (b'{"query": "{ __typename \xff\xfe }"}', "The request body is not valid UTF-8"),
        (
            b'{"query": "query($v: JSON) { __typename }", "variables": {"v": '
            + DEEP.encode()
            + b"}}",
            "The JSON is nested too deeply",
        ),
    ],
    ids=["null", "string", "number", "true", "empty_list", "invalid_utf8", "deep_variables"],
)
async def test_bodies_that_are_not_a_request_are_400s(client, caplog, body, message):
    with caplog.at_level(logging.DEBUG):
        response = await client.post(URL, content=body, headers=JSON)
    assert response.status_code == 400
    assert response.json() == {
        "data": None,
        "errors": [{"message": message, "extensions": {"code": "BAD_REQUEST"}}],
    }
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_deep_variables_in_a_get_are_a_400_too(client, caplog):
    with caplog.at_level(logging.DEBUG):
        response = await client.get(URL, params={"query": "{ __typename }", "variables": DEEP})
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"] == "The JSON is nested too deeply"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


SUBSCRIPTIONS = {
    "unnamed": ('subscription { namespaceEvents(namespace: "payments") { cursor } }', None),
    "named": (
        'subscription Watch { namespaceEvents(namespace: "payments") { cursor } }',
        "Watch",
    ),
}


@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest.mark.parametrize("kind", SUBSCRIPTIONS)
async def test_a_subscription_over_http_names_the_websocket(client, caplog, method, kind):
    query, name = SUBSCRIPTIONS[kind]
    request = {"query": query, **({"operationName": name} if name else {})}
    with caplog.at_level(logging.DEBUG):
        if method == "POST":
            response = await client.post(URL, json=request)
        else:
            response = await client.get(URL, params=request)
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["extensions"] == {"code": "BAD_REQUEST"}
    assert "websocket" in error["message"] and URL in error["message"]
    assert "graphql-transport-ws" in error["message"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_queries_and_mutations_over_http_still_run(client):
    response = await client.post(URL, json={"query": '{ namespace(name: "payments") { name } }'})
    assert response.json() == {"data": {"namespace": {"name": "payments"}}}
