"""POST bodies that are not a GraphQL request, and subscriptions sent over HTTP: a 400 with a
GraphQL-shaped error naming the problem, never a 500 or a logged traceback."""

import json
import logging
import re
import shutil
import subprocess

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


# GraphiQL's own flow: the page served at /tasker/graphql must hand every subscription to
# GraphiQL's websocket fetcher. No browser here: the page's inline script runs in Node with the
# browser globals stubbed; GraphiQL's fetcher is a stub applying GraphiQL's own rule (toolkit
# `createGraphiQLFetcher`: the websocket iff `documentAST` has a subscription operation whose
# name equals `operationName || undefined`).
NODE_HARNESS = r"""
const vm = require("vm");
const script = require("fs").readFileSync(0, "utf8");
const sent = [];
const context = {
  window: { location: { href: "http://127.0.0.1:1/tasker/graphql", search: "" } },
  history: { replaceState() {} },
  Cookies: { get() { return undefined; } },
  React: { createElement() { return {}; }, useState(v) { return [v, () => {}]; } },
  ReactDOM: { createRoot() { return { render() {} }; } },
  document: { getElementById() { return {}; } },
  GraphiQLPluginExplorer: { explorerPlugin() { return {}; } },
  URL,
  GraphiQL: {
    createFetcher(options) {
      return (params, opts) => {
        const name = params.operationName || undefined;
        const ast = opts && opts.documentAST;
        const ws = !!ast && ast.definitions.some((d) => d.kind === "OperationDefinition"
          && d.operation === "subscription" && (d.name ? d.name.value : undefined) === name);
        sent.push(ws ? "websocket " + options.subscriptionUrl : "http " + options.url);
      };
    },
  },
};
vm.createContext(context);
vm.runInContext(script, context);
for (const [query, operationName] of JSON.parse(process.argv[1])) {
  vm.runInContext("fetcher", context)({ query, operationName }, {});
}
console.log(JSON.stringify(sent));
"""

GRAPHIQL_CASES = [
    ('subscription { namespaceEvents(namespace: "payments") { cursor } }', None, "websocket"),
    ('# watch\nsubscription Watch { taskEvents(id: "x") { cursor } }', "Watch", "websocket"),
    ('subscription Watch { taskEvents(id: "x") { cursor } }', None, "websocket"),
    (
        'query Q { namespaces { name } }\nsubscription S { namespaceEvents(namespace: "p") '
        "{ cursor } }",
        "S",
        "websocket",
    ),
    (
        'query Q { namespaces { name } }\nsubscription S { namespaceEvents(namespace: "p") '
        "{ cursor } }",
        "Q",
        "http",
    ),
    ('{ a: namespace(name: "subscription") { name } }', None, "http"),
    ('query($s: String = "subscription {") { namespaces { name } }', None, "http"),
    (
        'fragment F on Query { __typename }\nsubscription { namespaceEvents(namespace: "p") '
        "{ cursor } }",
        None,
        "websocket",
    ),
    ('mutation { retryTask(id: "x") { __typename } } # subscription', None, "http"),
]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
async def test_graphiql_sends_every_subscription_over_the_websocket(client):
    html = (await client.get(URL, headers={"Accept": "text/html"})).text
    [script] = re.findall(r"<script>(.*?)</script>", html, flags=re.S)
    cases = json.dumps([[q, name] for q, name, _ in GRAPHIQL_CASES])
    node = subprocess.run(
        ["node", "-e", NODE_HARNESS, cases],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    sent = json.loads(node.stdout)
    assert [s.split()[0] for s in sent] == [where for _, _, where in GRAPHIQL_CASES]
    assert "websocket ws://127.0.0.1:1/tasker/graphql" in sent
