"""A claim commits without waiting for the WAL flush; a completion waits for it.

The claim statements set `synchronous_commit` off for their own transaction only
(`server.engine.pg_sql.QUICK_COMMIT`): a claim lost in a database crash puts the step back
where it was, while a completion, once acknowledged, must survive one. Each claim path runs
here inside an explicit transaction, so the setting it leaves is read before that commit.
"""

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from tortoise.transactions import in_transaction

from server.container import Services
from server.db.models import StepItem, WorkflowStep
from server.domain.views import CreateTask
from server.engine.store import Outcome
from server.registry.handler_registry import HandlerRegistry
from tests.conftest import BACKEND, ROOT, WORKFLOWS
from tests.support.recorder import Recorder

pytestmark = pytest.mark.skipif(BACKEND != "postgres", reason="PostgreSQL commit settings")


@pytest.fixture(scope="module")
def registry() -> Iterator[HandlerRegistry]:
    fixtures = ROOT / "tests" / "fixtures"
    yield HandlerRegistry.load([WORKFLOWS, fixtures / "flow", fixtures / "mapping"], examples=False)


async def setting_after(action: Callable[[], Awaitable[Any]]) -> tuple[Any, str]:
    """What `action` returns, and `synchronous_commit` as its transaction sees it after."""
    async with in_transaction() as conn:
        result = await action()
        rows = await conn.execute_query_dict("SELECT current_setting('synchronous_commit') AS s")
    return result, rows[0]["s"]


async def first_step(services: Services, namespace: str, name: str, context: dict) -> int:  # type: ignore[type-arg]
    services.set_dispatcher(Recorder())
    task, _ = await services.tasks.create_task(
        CreateTask(namespace=namespace, name=name, context=context)
    )
    step = await WorkflowStep.filter(task_id=task.id, waiting_on=0).order_by("id").first()
    assert step is not None
    return step.id


async def test_a_plain_claim_skips_the_flush_and_its_completion_waits(services: Services) -> None:
    step_id = await first_step(services, "shapes", "linear", {})
    claim, setting = await setting_after(lambda: services.runner.claim(step_id))
    assert claim is not None
    assert setting == "off"
    recorded, setting = await setting_after(
        lambda: services.runner.record(claim, Outcome(results={}))
    )
    assert recorded == "complete"
    assert setting == "on"


async def test_a_claim_under_a_limit_skips_the_flush(services: Services) -> None:
    # The first claim of a key makes its key row (the portable claim); the next one, with
    # room left, is the single limited statement.
    first = await first_step(services, "flow", "limited", {"customer": "acme"})
    assert await services.runner.claim(first) is not None
    step_id = await first_step(services, "flow", "limited", {"customer": "acme"})
    claim, setting = await setting_after(lambda: services.runner.claim(step_id))
    assert claim is not None and claim.limited
    assert setting == "off"


async def test_a_map_item_claim_skips_the_flush(services: Services) -> None:
    step_id = await first_step(services, "dynamic", "map_numbers", {"numbers": [1, 2, 3]})
    await services.runner.run_step(step_id)  # expands the map step into its items
    item = await StepItem.filter(step_id=step_id).order_by("idx").first()
    assert item is not None and services.runner.items is not None
    items = services.runner.items
    claimed, setting = await setting_after(
        lambda: items.claim(item.id, services.runner.claimer.request(0))
    )
    assert claimed is not None
    assert setting == "off"
