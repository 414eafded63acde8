"""Documents built to make validation slow cost nothing before they are refused.

graphql-core's OverlappingFieldsCanBeMerged rule is quadratic in the fields sharing a response
name; a ~16 KB document of such fields cost seconds of event-loop CPU, from anyone. With auth on
and nothing waived, a caller without a valid token is refused before the document is parsed;
otherwise a document over the work bounds is refused after parsing, before any rule runs. The
rule's instantiations are counted to prove it never ran. Refused requests leave the document
caches as they were, and those caches are bounded by the text they keep."""

import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
import strawberry.schema.schema
from graphql import parse
from graphql.validation.rules.overlapping_fields_can_be_merged import (
    OverlappingFieldsCanBeMergedRule,
)
from starlette.applications import Starlette
from starlette.testclient import TestClient

from graphql_schema.app import PATH, TaskerGraphQL
from graphql_schema.authorization import Authorization
from graphql_schema.bounds import QUERY_TOO_COMPLEX, Bounds, check_bounds
from graphql_schema.caches import TextCache
from graphql_schema.extensions import Limits
from server.app import create_app
from server.config import Settings
from tests.conftest import fast_settings
from tests.security.conftest import AUDIENCE, ISSUER, Keys, Tokens, secured_database


def comment() -> str:
    return f" #{secrets.token_hex(8)}"  # defeats any cache keyed by the text


ATTACKS = {
    "aliased_typename_and_health": (
        "{ " + " ".join("a:__typename a:health{status}" for _ in range(300)) + " }"
    ),
    "aliased_namespaces": (
        "{ "
        + " ".join("a:namespaces{b:name} a:namespaces{b:description}" for _ in range(300))
        + " }"
    ),
    "unaliased_namespaces": "{ " + "namespaces{name} namespaces{description} " * 300 + "}",
    "fragments": (
        "{ "
        + " ".join(f"...F{i}" for i in range(300))
        + " } "
        + " ".join(f"fragment F{i} on Query {{ namespaces {{ name }} }}" for i in range(300))
    ),
    "inline_fragments": "{ " + "... on Query { namespaces { name } } " * 300 + "}",
}
LEGAL = "{ namespaces { name } a: namespaces { description } }"


@pytest.fixture
def rule_runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times graphql-core's quadratic rule was set up (once per validation)."""
    runs: list[int] = []
    original = OverlappingFieldsCanBeMergedRule.__init__

    def counting(self: Any, context: Any) -> None:
        runs.append(1)
        original(self, context)

    monkeypatch.setattr(OverlappingFieldsCanBeMergedRule, "__init__", counting)
    return runs


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = strawberry.schema.schema.parse

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(strawberry.schema.schema, "parse", counting)
    return calls


def client_for(request: pytest.FixtureRequest, tmp: Any, keys: Keys, **overrides: Any) -> Any:
    settings = fast_settings(
        secured_database(request, tmp),
        jwt_public_key=keys.rsa_public,
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        **overrides,
    )
    return TestClient(create_app(settings))


MODES = {
    # Auth on, nothing waived: no document can run without a valid token.
    "strict": {"metrics_requires_auth": True, "health_status_requires_auth": True},
    # Auth on, health and analytics open to anyone: documents are parsed, then bounded.
    "waiving": {"metrics_requires_auth": False, "health_status_requires_auth": False},
}


@pytest.fixture(scope="module", params=list(MODES))
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, keys: Keys
) -> Iterator[tuple[str, TestClient]]:
    """One app at a time (pytest finishes one mode's tests before starting the other)."""
    mode = request.param
    with client_for(request, tmp_path_factory.mktemp(mode), keys, **MODES[mode]) as client:
        yield mode, client


def view(client: TestClient) -> TaskerGraphQL:
    app = client.app
    assert isinstance(app, Starlette)
    for route in app.routes:
        endpoint = getattr(route, "app", None)
        if getattr(route, "path", None) == PATH and isinstance(endpoint, TaskerGraphQL):
            return endpoint
    raise AssertionError("no GraphQL route")


def limits(client: TestClient) -> Limits:
    schema = view(client).schema
    return schema.limits  # type: ignore[attr-defined, no-any-return]


def cache_sizes(client: TestClient) -> tuple[int, int, int]:
    lim = limits(client)
    return len(lim.documents), len(lim.validated), len(Authorization.permissions)


def timed_post(client: TestClient, query: str, token: str | None) -> tuple[float, Any]:
    """The least CPU this process spent on one of three posts, and the last response. CPU
    time rather than wall time: a loaded machine stretches the wall clock, not the work (the
    quadratic rule cost 0.75-1.3 s of CPU per document)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    best, response = float("inf"), None
    for _ in range(3):
        started = time.process_time()
        response = client.post(PATH, json={"query": query + comment()}, headers=headers)
        best = min(best, time.process_time() - started)
    return best, response


@pytest.mark.parametrize("name", ATTACKS)
def test_attacks_without_a_token_are_refused_before_validation(
    served: tuple[str, TestClient], rule_runs: list[int], parses: list[int], name: str
) -> None:
    mode, client = served
    seconds, response = timed_post(client, ATTACKS[name], None)
    assert rule_runs == []
    assert seconds < 0.1
    error = response.json()["errors"][0]
    if mode == "strict":  # refused before the document is even parsed
        assert response.status_code == 401
        assert error["extensions"]["code"] == "AUTHENTICATION_FAILED"
        assert parses == []
    else:  # parsed (a document of waived fields may run), then refused unvalidated:
        # 401 when it needs more than the waived permissions, else by the bounds
        refusals = {(401, "AUTHENTICATION_FAILED"), (200, QUERY_TOO_COMPLEX)}
        assert (response.status_code, error["extensions"]["code"]) in refusals


@pytest.mark.parametrize("name", ATTACKS)
def test_attacks_with_a_valid_token_never_reach_the_quadratic_rule(
    served: tuple[str, TestClient], tokens: Tokens, rule_runs: list[int], name: str
) -> None:
    _, client = served
    seconds, response = timed_post(client, ATTACKS[name], tokens.valid(["*"]))
    assert response.status_code == 200
    error = response.json()["errors"][0]
    assert error["extensions"] == {"code": QUERY_TOO_COMPLEX}
    assert "Allowed:" in error["message"]
    assert rule_runs == [] and seconds < 0.1


def test_the_same_name_bound_names_the_field(
    served: tuple[str, TestClient], tokens: Tokens
) -> None:
    _, client = served
    _, response = timed_post(client, ATTACKS["unaliased_namespaces"], tokens.valid(["*"]))
    error = response.json()["errors"][0]
    assert error["message"] == "600 fields named 'namespaces' in one selection set. Allowed: 20"


def test_a_legal_document_is_validated(
    served: tuple[str, TestClient], tokens: Tokens, rule_runs: list[int]
) -> None:
    """The counter does see validations: a document within the bounds runs the rule."""
    _, client = served
    response = client.post(
        PATH,
        json={"query": LEGAL + comment()},
        headers={"Authorization": f"Bearer {tokens.valid(['*'])}"},
    )
    assert response.status_code == 200 and response.json()["data"]["namespaces"]
    assert rule_runs == [1]


def test_the_bounds_come_from_settings(served: tuple[str, TestClient]) -> None:
    bounds = limits(served[1]).bounds
    defaults = Settings()
    assert (bounds.max_fields, bounds.max_aliases, bounds.max_same_name) == (
        defaults.graphql_max_fields,
        defaults.graphql_max_aliases,
        defaults.graphql_max_same_name_fields,
    )


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{ a { b c } d { e f } }", "The document has more than 5 fields. Allowed: 5"),
        ("{ a: x b: y c: z }", "3 aliases found. Allowed: 2"),
        ("{ x { a } ...F } fragment F on Q { x { b } x { c } }", "3 fields named 'x' in one"),
        ("{ x ... on Q { x ... on Q { x } } }", "3 fields named 'x' in one"),
        ("{ ...F } fragment F on Q { ...F x }", None),  # a cycle: validation reports it
        ("{ a { b c } d }", None),
    ],
)
def test_the_bounds_of_a_document(document: str, message: str | None) -> None:
    error = check_bounds(parse(document), Bounds(max_fields=5, max_aliases=2, max_same_name=2))
    if message is None:
        assert error is None
    else:
        assert error is not None and error.message.startswith(message)
        assert error.extensions == {"code": QUERY_TOO_COMPLEX}


# Caches: refused requests leave nothing behind; what is kept is bounded by its text.

BIG_COMMENT = " #" + "x" * 490_000


def test_refused_requests_leave_the_caches_empty(
    served: tuple[str, TestClient], tokens: Tokens
) -> None:
    _, client = served
    before = cache_sizes(client)
    lacking = {"Authorization": f"Bearer {tokens.valid(['tasker.task:index'])}"}
    for i in range(40):
        query = f"{{ __typename n{i}: namespaces {{ name }} }}" + BIG_COMMENT
        assert client.post(PATH, json={"query": query}).status_code == 401
        assert client.post(PATH, json={"query": query}, headers=lacking).status_code == 403
        # Refused by validation or by the bounds, for an allowed caller:
        for refused in (f"{{ nope{i} }}", ATTACKS["unaliased_namespaces"]):
            body = client.post(PATH, json={"query": refused + BIG_COMMENT}, headers=lacking)
            assert body.json()["errors"]
    assert cache_sizes(client) == before


def test_the_caches_are_bounded_by_their_text() -> None:
    cache: TextCache[int] = TextCache(max_entries=100, max_chars=1_000)
    for i in range(10):
        cache.put(f"{i:03d}" + "x" * 297, i)  # 300 characters each
    assert len(cache) == 3 and cache.chars == 900
    assert cache.get("009" + "x" * 297) == 9 and cache.get("000" + "x" * 297) is None
    cache.put("y" * 1_001, 1)  # longer than the whole budget: not kept, nothing evicted
    assert len(cache) == 3
