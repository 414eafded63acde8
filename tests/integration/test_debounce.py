"""Debounced creation: creations with one (handler, key) inside the window collapse into one
task, which starts `seconds` after the last of them with the last context; the creation that
makes it answers 201, each joining one 200. Exactly one task under concurrent creations.
"""

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from server.app import create_app
from server.config import Settings
from server.container import Services, build_services
from server.db.models import Task
from server.domain.errors import ValidationFailed
from server.domain.views import CreateTask
from server.infra.ports import NullDispatcher
from server.registry.definitions import parse_definition
from server.registry.handler_registry import HandlerRegistry
from server.testing import VirtualClock
from tests.conftest import fast_settings, on_every_store

pytestmark = on_every_store

LINEAR = {"namespace": "shapes", "name": "linear"}
WINDOW = 30.0


def keyed(doc: object, **extra: object) -> CreateTask:
    return CreateTask(
        **LINEAR,
        context={"document_id": doc, "n": extra.pop("n", 0)},
        debounce_key="context.document_id",
        debounce_seconds=WINDOW,
        **extra,  # type: ignore[arg-type]
    )


async def test_creations_inside_the_window_join_one_task_with_the_last_context(
    services: Services,
) -> None:
    first, created = await services.tasks.create_task(keyed("doc-1", n=1))
    assert created and first.run_at is not None
    second, created = await services.tasks.create_task(keyed("doc-1", n=2))
    assert not created and second.id == first.id
    assert second.context == {"document_id": "doc-1", "n": 2}
    assert second.run_at is not None and second.run_at >= first.run_at
    other, created = await services.tasks.create_task(keyed("doc-2", n=3))
    assert created and other.id != first.id
    assert await Task.filter(namespace="shapes", name="linear").count() == 2
    # Before the start, the claim refuses (a delayed start): the task is 'scheduled'.
    root = await services.steps.get_step(first.id, "a")
    assert await services.runner.claim(root.id) is None


async def test_a_window_whose_start_came_is_closed_and_the_next_creation_opens_another(
    services: Services,
) -> None:
    clock = VirtualClock()
    services.changes.clock = clock
    first, _ = await services.tasks.create_task(keyed("doc-1"))
    assert first.run_at is not None
    clock.advance_to(first.run_at + timedelta(seconds=1))
    second, created = await services.tasks.create_task(keyed("doc-1"))
    assert created and second.id != first.id


async def test_fifty_concurrent_creations_with_one_key_make_exactly_one_task(
    services: Services,
) -> None:
    results = await asyncio.gather(
        *(services.tasks.create_task(keyed("same", n=i)) for i in range(50))
    )
    ids = {view.id for view, _ in results}
    assert len(ids) == 1
    assert sum(created for _, created in results) == 1
    assert await Task.filter(namespace="shapes", name="linear").count() == 1


async def test_a_key_path_that_does_not_resolve_is_refused_naming_it(services: Services) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await services.tasks.create_task(
            CreateTask(**LINEAR, context={}, debounce_key="context.document_id", debounce_seconds=5)
        )
    assert "context.document_id" in caught.value.details["debounce_key"][0]
    with pytest.raises(ValidationFailed) as caught:
        await services.tasks.create_task(CreateTask(**LINEAR, context={}, debounce_key="constant"))
    assert "debounce_seconds" in caught.value.details
    with pytest.raises(ValidationFailed):
        await services.tasks.create_task(
            CreateTask(**LINEAR, context={}, debounce_key="k", debounce_seconds=-1)
        )
    assert await Task.all().count() == 0


DEBOUNCED_YAML = {
    "namespace_name": "shapes",
    "name": "debounced",
    "version": "1.0.0",
    "debounce": {"key": "context.document_id", "seconds": 30},
    "step_templates": [{"name": "a", "handler_class": "tests.support.steps:Work"}],
}


@pytest.fixture
async def debounced(
    database_url: str, registry: HandlerRegistry, step_store: str | None
) -> AsyncIterator[Services]:
    template = parse_definition(DEBOUNCED_YAML, source="debounced.yaml").template
    assert template.debounce == ("context.document_id", 30.0)
    settings: Settings = fast_settings(database_url)
    svc = build_services(
        settings,
        NullDispatcher(),
        registry=HandlerRegistry.from_templates([*registry.all(), template]),
        store=step_store,
    )
    await svc.open()
    try:
        yield svc
    finally:
        await svc.close()


async def test_the_handler_yaml_debounce_applies_over_rest_201_then_200(
    debounced: Services,
) -> None:
    transport = httpx.ASGITransport(app=create_app(services=debounced))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        body = {"namespace": "shapes", "name": "debounced", "context": {"document_id": 7}}
        first = await client.post("/tasker/tasks", json=body)
        assert first.status_code == 201, first.text
        body["context"] = {"document_id": 7, "edit": 2}
        second = await client.post("/tasker/tasks", json=body)
        assert second.status_code == 200, second.text
        assert second.json()["id"] == first.json()["id"]
        assert second.json()["context"] == {"document_id": 7, "edit": 2}
        missing = await client.post(
            "/tasker/tasks", json={"namespace": "shapes", "name": "debounced", "context": {}}
        )
        assert missing.status_code == 422, missing.text
        assert "context.document_id" in missing.text
        # GraphQL: the creation fields override the handler's.
        query = """mutation($input: CreateTaskInput!) { createTask(input: $input) {
          __typename ... on Task { id context runAt } } }"""
        variables = {
            "input": {
                "namespace": "shapes",
                "name": "debounced",
                "context": {"document_id": 7, "edit": 3},
                "debounceKey": "context.document_id",
                "debounceSeconds": 60,
            }
        }
        reply = await client.post("/tasker/graphql", json={"query": query, "variables": variables})
        data = reply.json()["data"]["createTask"]
        assert data["__typename"] == "Task" and data["id"] == first.json()["id"]
        assert data["context"]["edit"] == 3
