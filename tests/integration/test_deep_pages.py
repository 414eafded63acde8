"""Deep offset pages start from anchors (`server.db.page_anchors`).

At a million tasks, page 20,000 walked 500,000 index entries (13 x the first page). The keys at
every EVERY-th position are now taken once and a deep page starts from the one before its
offset. These tests shrink EVERY and DEEP so that a handful of tasks has deep pages, and
check every page against the plain walk, including after tasks are created behind the anchors.
"""

import pytest

from server.container import Services
from server.db import page_anchors, reads
from server.domain.states import TaskState
from server.domain.views import CreateTask, TaskFilter


@pytest.fixture(autouse=True)
def _small_anchors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(page_anchors, "EVERY", 3)
    monkeypatch.setattr(page_anchors, "DEEP", 2)


async def _create(services: Services, n: int, name: str = "linear") -> None:
    for i in range(n):
        await services.tasks.create_task(
            CreateTask(namespace="shapes", name=name, context={"i": i})
        )


async def _pages(services: Services, flt: TaskFilter, per_page: int) -> list[list[str]]:
    out = []
    for page in range(1, 8):
        got = await services.tasks.list_tasks(flt, page=page, per_page=per_page)
        out.append([str(t.id) for t in got.items])
    return out


async def _walked(services: Services, flt: TaskFilter, per_page: int) -> list[list[str]]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(page_anchors, "DEEP", 10**9)
        return await _pages(services, flt, per_page)


@pytest.mark.parametrize("per_page", [1, 2, 4])
async def test_deep_pages_match_the_plain_walk(services: Services, per_page: int) -> None:
    await _create(services, 11)
    everything = TaskFilter()
    assert await _pages(services, everything, per_page) == await _walked(
        services, everything, per_page
    )
    assert page_anchors.ANCHORS.recall(("shapes", None, None), _never) is None
    assert page_anchors.ANCHORS.recall((None, None, None), _never)  # they were used


async def test_tasks_created_after_the_anchors_shift_the_pages_exactly(
    services: Services,
) -> None:
    await _create(services, 10)
    await _pages(services, TaskFilter(), 2)  # takes the anchors
    taken = page_anchors.ANCHORS.recall((None, None, None), _never)
    await _create(services, 4)
    assert await _pages(services, TaskFilter(), 2) == await _walked(services, TaskFilter(), 2)
    assert page_anchors.ANCHORS.recall((None, None, None), _never) == taken  # not retaken


async def test_filters_on_fixed_fields_use_anchors_and_status_filters_walk(
    services: Services,
) -> None:
    await _create(services, 7, "linear")
    await _create(services, 5, "diamond")
    by_name = TaskFilter(namespace="shapes", name="linear")
    assert await _pages(services, by_name, 2) == await _walked(services, by_name, 2)
    assert page_anchors.ANCHORS.recall(("shapes", "linear", None), _never)
    pending = TaskFilter(status=TaskState.PENDING)
    assert await _pages(services, pending, 2) == await _walked(services, pending, 2)
    assert page_anchors.ANCHORS.recall((None, None, None), _never) is None


async def _never() -> list[page_anchors.Key]:
    raise AssertionError("recall only")


@pytest.mark.parametrize("flt", [TaskFilter(), TaskFilter(namespace="shapes", name="linear")])
async def test_pages_read_directly_and_by_ids_meet_without_gaps(
    services: Services, monkeypatch: pytest.MonkeyPatch, flt: TaskFilter
) -> None:
    """Pages up to `reads.DIRECT_OFFSET` read their rows in the index walk, deeper ones by
    ids: together they give every task once, in order, as either alone does."""
    monkeypatch.setattr(page_anchors, "DEEP", 10**9)
    await _create(services, 11)
    runs = []
    for direct in (3, 0, 10**9):  # the boundary inside the pages, then all one way or the other
        monkeypatch.setattr(reads, "DIRECT_OFFSET", direct)
        pages = await _pages(services, flt, 2)
        assert [len(p) for p in pages] == [2, 2, 2, 2, 2, 1, 0]
        runs.append([i for p in pages for i in p])
    newest_first = [str(t.id) for t in (await services.tasks.list_tasks(flt, per_page=11)).items]
    assert runs == [newest_first] * 3
