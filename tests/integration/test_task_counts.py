"""Listing tasks at a million rows.

bench/million.py found `GET /tasker/tasks` dominated by counting every matching task on each
request, and deep pages reading every row before them. Counts above `LARGE_COUNT` are now reused
for a few seconds (smaller ones stay exact), and the offset is walked over ids only.

The list's p99 was then set by every request in flight at a count's expiry counting
on its own; an expired count is now answered once more while a single refresh runs.
"""

import asyncio

import pytest

from server.container import Services
from server.db import reads
from server.domain.states import TaskState
from server.domain.views import CreateTask, TaskFilter
from server.infra import task_counts
from server.services import queries
from tests.conftest import BACKEND
from tests.support.plans import index_condition_on, plan_lines


async def _create(services: Services, n: int) -> list[str]:
    ids = []
    for i in range(n):
        task, _ = await services.tasks.create_task(
            CreateTask(namespace="shapes", name="linear", context={"i": i})
        )
        ids.append(str(task.id))
    return ids


async def _remembered_three_then_a_fourth(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counts over 2 are "large": a count of 3 is remembered, then a fourth task created."""
    monkeypatch.setattr(task_counts, "LARGE_COUNT", 2)
    await _create(services, 3)
    assert (await services.tasks.list_tasks(TaskFilter())).total_count == 3
    await _create(services, 1)


async def test_small_counts_are_always_exact(services: Services) -> None:
    await _create(services, 3)
    assert (await services.tasks.list_tasks(TaskFilter())).total_count == 3
    await _create(services, 1)
    assert (await services.tasks.list_tasks(TaskFilter())).total_count == 4


async def test_large_counts_are_reused_briefly(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _remembered_three_then_a_fourth(services, monkeypatch)
    # Within the TTL the large count is reused, by REST pages and GraphQL connections alike...
    assert (await services.tasks.list_tasks(TaskFilter())).total_count == 3
    assert (await services.tasks.list_tasks_after(TaskFilter(), first=2)).total_count == 3
    # ...per filter: another filter is counted on its own.
    pending = TaskFilter(status=TaskState.PENDING)
    assert (await services.tasks.list_tasks(pending)).total_count == 4
    monkeypatch.setattr(queries.COUNTS, "ttl", 0.0)
    queries.COUNTS.clear()
    assert (await services.tasks.list_tasks(TaskFilter())).total_count == 4


async def test_offset_pages_list_every_task_once_newest_first(services: Services) -> None:
    ids = await _create(services, 7)
    seen: list[str] = []
    for page in range(1, 5):
        got = await services.tasks.list_tasks(TaskFilter(), page=page, per_page=2)
        seen.extend(str(t.id) for t in got.items)
        assert got.has_next == (page * 2 < 7)
    assert seen == list(reversed(ids))


async def test_an_expired_count_is_refreshed_once_while_requests_keep_answering(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _remembered_three_then_a_fourth(services, monkeypatch)
    counted = 0
    real_count = reads.count

    async def counting(flt: TaskFilter) -> int:
        nonlocal counted
        counted += 1
        return await real_count(flt)

    monkeypatch.setattr(reads, "count", counting)
    monkeypatch.setattr(queries.COUNTS, "ttl", 0.0)
    pages = await asyncio.gather(
        *(services.tasks.list_tasks(TaskFilter()) for _ in range(10)),
        services.tasks.list_tasks_after(TaskFilter(), first=2),
    )
    # Every request answered at once with the expired figure; one count ran behind them.
    assert [p.total_count for p in pages] == [3] * 11
    for _ in range(100):
        if counted and not queries.COUNTS._computing:
            break
        await asyncio.sleep(0.01)
    assert counted == 1
    assert (await services.tasks.list_tasks(TaskFilter())).total_count == 4


async def test_a_count_past_the_stale_limit_is_counted_afresh(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _remembered_three_then_a_fourth(services, monkeypatch)
    monkeypatch.setattr(queries.COUNTS, "ttl", 0.0)
    monkeypatch.setattr(queries.COUNTS, "stale_limit", 0.0)
    assert (await services.tasks.list_tasks(TaskFilter())).total_count == 4
    assert (await services.tasks.list_tasks_after(TaskFilter(), first=2)).total_count == 4


@pytest.mark.skipif(BACKEND != "postgres", reason="reads PostgreSQL's query plan")
async def test_a_filtered_page_is_read_in_index_order(services: Services) -> None:
    """The lists order by (created_at, id): the (namespace, status) index must end with both,
    or every filtered page pays a sort (2.2 x the empty database's time at a million tasks)."""
    flt = TaskFilter(namespace="shapes", status=TaskState.PENDING)
    lines = await plan_lines(lambda q: reads.keyset_sql(q, flt, None, 25))
    assert "Sort" not in "\n".join(lines), lines
    assert index_condition_on(lines, "namespace", "status"), lines
