"""Issue 7: listing tasks at a million rows.

bench/million.py found `GET /tasker/tasks` dominated by counting every matching task on each
request, and deep pages reading every row before them. Counts above `LARGE_COUNT` are now reused
for a few seconds (smaller ones stay exact), and the offset is walked over ids only.
"""

import pytest

from server.container import Services
from server.domain.states import TaskState
from server.domain.views import CreateTask, TaskFilter
from server.services import queries


async def _create(services: Services, n: int) -> list[str]:
    ids = []
    for i in range(n):
        task, _ = await services.tasks.create_task(
            CreateTask(namespace="shapes", name="linear", context={"i": i})
        )
        ids.append(str(task.id))
    return ids


async def test_small_counts_are_always_exact(services: Services) -> None:
    queries._counts.clear()
    await _create(services, 3)
    assert (await services.tasks.list_tasks(TaskFilter())).total_count == 3
    await _create(services, 1)
    assert (await services.tasks.list_tasks(TaskFilter())).total_count == 4


async def test_large_counts_are_reused_briefly(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    queries._counts.clear()
    monkeypatch.setattr(queries, "LARGE_COUNT", 2)
    await _create(services, 3)
    assert (await services.tasks.list_tasks(TaskFilter())).total_count == 3
    await _create(services, 1)
    # Within the TTL the large count is reused, by REST pages and GraphQL connections alike...
    assert (await services.tasks.list_tasks(TaskFilter())).total_count == 3
    assert (await services.tasks.list_tasks_after(TaskFilter(), first=2)).total_count == 3
    # ...per filter: another filter is counted on its own.
    pending = TaskFilter(status=TaskState.PENDING)
    assert (await services.tasks.list_tasks(pending)).total_count == 4
    monkeypatch.setattr(queries, "COUNT_TTL", 0.0)
    queries._counts.clear()
    assert (await services.tasks.list_tasks(TaskFilter())).total_count == 4


async def test_offset_pages_list_every_task_once_newest_first(services: Services) -> None:
    queries._counts.clear()
    ids = await _create(services, 7)
    seen: list[str] = []
    for page in range(1, 5):
        got = await services.tasks.list_tasks(TaskFilter(), page=page, per_page=2)
        seen.extend(str(t.id) for t in got.items)
        assert got.has_next == (page * 2 < 7)
    assert seen == list(reversed(ids))
